# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_certctl_global_optspecs
    string join \n state-dir= ssl-dir= server= ca-bundle= config= v/verbose q/quiet h/help V/version
end

function __fish_certctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_certctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_certctl_using_subcommand
    set -l cmd (__fish_certctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c certctl -n "__fish_certctl_needs_command" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_needs_command" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_needs_command" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_needs_command" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_needs_command" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_needs_command" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_needs_command" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_needs_command" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "request" -d 'Get a certificate for one or more names and install its bundle'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "reconfigure" -d 'Change a certificate\'s stored settings (hooks, sockets, challenge, key type, ssl dir, output files) without a new order; shows the change'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "deploy" -d 'Push the stored certificates to their HAProxy sockets now (a failed push stays pending, shown by list and retried by renew, until one succeeds)'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "renew" -d 'Renew the certificates that are due, with the settings stored when they were requested'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "revoke" -d 'Revoke a certificate at its CA, stop managing it and remove its bundle'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "delete" -d 'Stop managing a certificate and remove its bundle, without revoking it'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "concat" -d 'Rebuild bundles in the ssl directory from the stored files, only where they differ'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "account" -d 'The ACME account: its key\'s thumbprint, for stateless HTTP-01 in HAProxy'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "import" -d 'Take over certificates issued by another ACME client, without issuing new ones'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "ca" -d 'The local CA (`--server local`): show its certificate, print its CRL, or trust it'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "list" -d 'List the managed certificates: names, key type, expiry, next renewal, CA, bundle'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "check" -d 'Check the certificates for monitoring (Nagios/Icinga plugin): exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one status line with performance data'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "store" -d 'A store shared by several nodes: make its key, copy state into it or out of it'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "sync" -d 'Install on this node what the shared store holds, newer than its bundles'
complete -c certctl -n "__fish_certctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand request" -l name -d 'The name of the certificate and of its bundle file, <ssl-dir>/<name>.pem [default: the first domain]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l email -d 'The contact address for the ACME account, used when the account is created' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l key-type -d 'The type of the certificate\'s key [default: ec256]' -r -f -a "ec256\t''
ec384\t''
rsa2048\t''
rsa3072\t''
rsa4096\t''"
complete -c certctl -n "__fish_certctl_using_subcommand request" -l challenge -d 'How challenges are answered [default: standalone]; NAME=HOW for one name only' -r -f -a "standalone\t'certctl\'s own responder on --http-addr, only while an order runs'
webroot\t'token files under --webroot/.well-known/acme-challenge/'
stateless\t'the proxy answers from the account thumbprint (see `certctl account thumbprint`)'
dns-01\t'a TXT record under _acme-challenge, by RFC 2136 (--dns-server, --tsig-key) or hooks'
tls-alpn-01\t'certctl answers acme-tls/1 on --tls-alpn-addr, behind HAProxy\'s TCP frontend on 443'"
complete -c certctl -n "__fish_certctl_using_subcommand request" -l http-addr -d 'The address the standalone responder listens on while an order runs [default: 127.0.0.1:2031]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l webroot -d 'The web server\'s document root for --challenge webroot; token files go under DIR/.well-known/acme-challenge/' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l profile -d 'The CA\'s certificate profile (as its directory lists them, e.g. Let\'s Encrypt\'s classic, tlsserver, shortlived); sent with every order, renewals included; a change makes the certificate due. \'\' goes back to the CA\'s default' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l preferred-chain -d 'Among the chains the CA offers, the one whose top certificate is issued by (or is) this common name, e.g. "ISRG Root X1"; when none matches, the CA\'s default chain' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l eab-kid -d 'The key id of the CA\'s External Account Binding (with --eab-hmac-key)' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l eab-hmac-key -d 'The HMAC key of the CA\'s External Account Binding, base64url as the CA shows it; used to create the account, then forgotten' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-server -d 'The primary DNS server that takes RFC 2136 updates, HOST[:PORT] (port 53 by default), e.g. --dns-server ns1.mon-app.fr --tsig-key /etc/certctl/tsig.key' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l tsig-key -d 'The TSIG key that signs the updates: a file in BIND\'s format, as `tsig-keygen -a hmac-sha256 NAME` prints it (hmac-sha256, hmac-sha384 or hmac-sha512); keep it 0600. Referenced by path and read at each renewal; its secret is never logged or stored' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-hook -d 'Command that creates the TXT record, instead of --dns-server (run with /bin/sh -c)' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-cleanup-hook -d 'Command that removes the TXT record again; it also sees CERTBOT_AUTH_OUTPUT (what the --dns-hook printed). lego style: `CMD cleanup FQDN VALUE` (the --dns-hook by default)' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-hook-style -d 'How the hooks are called [default: certbot]' -r -f -a "certbot\t'--dns-hook and --dns-cleanup-hook with CERTBOT_DOMAIN, CERTBOT_VALIDATION, ...'
lego\t'one program called as `CMD present FQDN VALUE` and `CMD cleanup FQDN VALUE`'"
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-zone -d 'The zone that holds the _acme-challenge records (the target zone when they are CNAMEs) [default: found by SOA lookup]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-resolver -d 'The DNS resolver for SOA, NS and CNAME lookups, HOST[:PORT] [default: the system\'s, /etc/resolv.conf]. With a port, the zone\'s nameservers are asked on that port too' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l dns-timeout -d 'Seconds to wait for every nameserver of the zone to serve the records (and for each DNS exchange or hook) [default: 120]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l tls-alpn-addr -d 'The address certctl answers tls-alpn-01 on while an order runs (--challenge tls-alpn-01) [default: 127.0.0.1:2032]; HAProxy\'s TCP frontend on 443 sends the ClientHellos that offer ALPN acme-tls/1 there. Stored for renew' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l pre-hook -d 'Command run once before the first order' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l deploy-hook -d 'Command run once per issued certificate' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l post-hook -d 'Command run once at the end when anything was issued, e.g. "systemctl reload haproxy"' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l hook-timeout -d 'Seconds a hook may run before it is killed [default: 300]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l haproxy-socket -d 'HAProxy admin socket (PATH or IP:PORT, `level admin`) to hot-swap the certificate into with no reload; repeat for several proxies; stored for renew' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l days -d 'Local CA only (--server local): how many days the certificate is valid [default: 90]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l cert-file -d 'Write the certificate (leaf) here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l key-file -d 'Write the private key here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l chain-file -d 'Write the intermediates here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l fullchain-file -d 'Write the leaf and intermediates here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l owner -d 'Owner of the output files, e.g. unbound:unbound' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l mode -d 'Octal mode of the output files [default: 600 for the key, 644 for the others]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand request" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand request" -l agree-tos -d 'Agree to the CA\'s terms of service without asking; needed when no terminal is attached'
complete -c certctl -n "__fish_certctl_using_subcommand request" -l client-auth -d 'Local CA only: add the clientAuth usage, for mutual TLS'
complete -c certctl -n "__fish_certctl_using_subcommand request" -l force -d 'Request a new certificate even when the current one is valid and not due'
complete -c certctl -n "__fish_certctl_using_subcommand request" -s y -l yes -d 'Remove names from a certificate without asking (needed with no terminal)'
complete -c certctl -n "__fish_certctl_using_subcommand request" -l json -d 'Print the result as a JSON object on stdout'
complete -c certctl -n "__fish_certctl_using_subcommand request" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand request" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand request" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand request" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l key-type -d 'The type of the certificate\'s key; a change makes it due at the next renew' -r -f -a "ec256\t''
ec384\t''
rsa2048\t''
rsa3072\t''
rsa4096\t''"
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l challenge -d 'How challenges are answered; NAME=HOW for one name only (as for request)' -r -f -a "standalone\t'certctl\'s own responder on --http-addr, only while an order runs'
webroot\t'token files under --webroot/.well-known/acme-challenge/'
stateless\t'the proxy answers from the account thumbprint (see `certctl account thumbprint`)'
dns-01\t'a TXT record under _acme-challenge, by RFC 2136 (--dns-server, --tsig-key) or hooks'
tls-alpn-01\t'certctl answers acme-tls/1 on --tls-alpn-addr, behind HAProxy\'s TCP frontend on 443'"
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l http-addr -d 'The address the standalone responder listens on' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l webroot -d 'The document root for --challenge webroot' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l profile -d 'The CA\'s certificate profile (as its directory lists them, e.g. Let\'s Encrypt\'s classic, tlsserver, shortlived); sent with every order, renewals included; a change makes the certificate due. \'\' goes back to the CA\'s default' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l preferred-chain -d 'Among the chains the CA offers, the one whose top certificate is issued by (or is) this common name, e.g. "ISRG Root X1"; when none matches, the CA\'s default chain' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-server -d 'The primary DNS server that takes RFC 2136 updates, HOST[:PORT] (port 53 by default), e.g. --dns-server ns1.mon-app.fr --tsig-key /etc/certctl/tsig.key' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l tsig-key -d 'The TSIG key that signs the updates: a file in BIND\'s format, as `tsig-keygen -a hmac-sha256 NAME` prints it (hmac-sha256, hmac-sha384 or hmac-sha512); keep it 0600. Referenced by path and read at each renewal; its secret is never logged or stored' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-hook -d 'Command that creates the TXT record, instead of --dns-server (run with /bin/sh -c)' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-cleanup-hook -d 'Command that removes the TXT record again; it also sees CERTBOT_AUTH_OUTPUT (what the --dns-hook printed). lego style: `CMD cleanup FQDN VALUE` (the --dns-hook by default)' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-hook-style -d 'How the hooks are called [default: certbot]' -r -f -a "certbot\t'--dns-hook and --dns-cleanup-hook with CERTBOT_DOMAIN, CERTBOT_VALIDATION, ...'
lego\t'one program called as `CMD present FQDN VALUE` and `CMD cleanup FQDN VALUE`'"
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-zone -d 'The zone that holds the _acme-challenge records (the target zone when they are CNAMEs) [default: found by SOA lookup]' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-resolver -d 'The DNS resolver for SOA, NS and CNAME lookups, HOST[:PORT] [default: the system\'s, /etc/resolv.conf]. With a port, the zone\'s nameservers are asked on that port too' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dns-timeout -d 'Seconds to wait for every nameserver of the zone to serve the records (and for each DNS exchange or hook) [default: 120]' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l tls-alpn-addr -d 'The address certctl answers tls-alpn-01 on while an order runs (--challenge tls-alpn-01) [default: 127.0.0.1:2032]; HAProxy\'s TCP frontend on 443 sends the ClientHellos that offer ALPN acme-tls/1 there. Stored for renew' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l pre-hook -d 'Command run once before the first order' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l deploy-hook -d 'Command run once per issued certificate' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l post-hook -d 'Command run once at the end when anything was issued, e.g. "systemctl reload haproxy"' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l hook-timeout -d 'Seconds a hook may run before it is killed [default: 300]' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l haproxy-socket -d 'HAProxy admin socket to push to; replaces the stored ones (`none` for none)' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l cert-file -d 'Write the certificate (leaf) here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l key-file -d 'Write the private key here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l chain-file -d 'Write the intermediates here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l fullchain-file -d 'Write the leaf and intermediates here' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l owner -d 'Owner of the output files, e.g. unbound:unbound' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l mode -d 'Octal mode of the output files [default: 600 for the key, 644 for the others]' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -l dry-run -d 'Show what would change, and change nothing'
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand reconfigure" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand deploy" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l jobs -d 'How many orders run at once [default: 4]' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l pre-hook -d 'Command run once before the first order' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l deploy-hook -d 'Command run once per issued certificate' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l post-hook -d 'Command run once at the end when anything was issued, e.g. "systemctl reload haproxy"' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l hook-timeout -d 'Seconds a hook may run before it is killed [default: 300]' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l haproxy-socket -d 'HAProxy admin socket (PATH or IP:PORT, `level admin`) to hot-swap the certificate into with no reload; repeat for several proxies; in addition to the stored ones' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l metrics-file -d 'Write the metrics in node_exporter\'s textfile format to this file (atomically) at the end of the run, for Prometheus' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l force -d 'Renew even when not due'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l dry-run -d 'Run the whole flow against the CA (Let\'s Encrypt staging instead of production) but write nothing and run no hook'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -l json -d 'Print the results as JSON on stdout'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand renew" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l reason -d 'Reason given to the CA' -r -f -a "unspecified\t''
keycompromise\t''
superseded\t''
cessationofoperation\t''
affiliationchanged\t''"
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l post-hook -d 'Command run after the certificate was revoked, e.g. "systemctl reload haproxy"' -r
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l haproxy-config -d 'HAProxy\'s configuration, to keep a bundle it names [default: /etc/haproxy/haproxy.cfg]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -l keep-bundle -d 'Leave the bundle in the ssl directory (for a proxy that cannot start without it)'
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand revoke" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l post-hook -d 'Command run after the certificate was archived, e.g. "systemctl reload haproxy"' -r
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l haproxy-config -d 'As for revoke [default: /etc/haproxy/haproxy.cfg when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand delete" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c certctl -n "__fish_certctl_using_subcommand delete" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand delete" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand delete" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand concat" -l stdout -d 'Print the bundle of NAME on stdout instead of writing files' -r
complete -c certctl -n "__fish_certctl_using_subcommand concat" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand concat" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand concat" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand concat" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand concat" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand concat" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand concat" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand concat" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand concat" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -f -a "thumbprint" -d 'Print the account key\'s thumbprint and the HAProxy lines that answer every HTTP-01 challenge from it, so no responder is needed (`request --challenge stateless`)'
complete -c certctl -n "__fish_certctl_using_subcommand account; and not __fish_seen_subcommand_from thumbprint help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l email -d 'Contact address, used when the account is created' -r
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l eab-kid -d 'The key id of the CA\'s External Account Binding (with --eab-hmac-key)' -r
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l eab-hmac-key -d 'The HMAC key of the CA\'s External Account Binding, base64url as the CA shows it; used to create the account, then forgotten' -r
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -l agree-tos -d 'Agree to the CA\'s terms of service when the account is created'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from thumbprint" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "thumbprint" -d 'Print the account key\'s thumbprint and the HAProxy lines that answer every HTTP-01 challenge from it, so no responder is needed (`request --challenge stateless`)'
complete -c certctl -n "__fish_certctl_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -f -a "certbot" -d 'Take over certbot\'s certificates, without issuing new ones'
complete -c certctl -n "__fish_certctl_using_subcommand import; and not __fish_seen_subcommand_from certbot help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l cert-name -d 'Take over only this certificate (as `certbot certificates` names it); repeat for more' -r
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l force -d 'Replace a certificate certctl already manages under the same name'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l dry-run -d 'Say what would be taken over, and write nothing'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -l json -d 'Print a JSON array on stdout, one object per certificate'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from certbot" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "certbot" -d 'Take over certbot\'s certificates, without issuing new ones'
complete -c certctl -n "__fish_certctl_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -f -a "show" -d 'Print the local CA\'s certificate (creating the CA when there is none yet), for HAProxy\'s `ca-file` and for clients'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -f -a "crl" -d 'Print a fresh CRL of the certificates revoked by the local CA, for HAProxy\'s `crl-file`; <state-dir>/ca/crl.pem is kept up to date too'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -f -a "install" -d 'Add the local CA to the system\'s trust store (Debian: /usr/local/share/ca-certificates and update-ca-certificates), after asking like revoke does'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and not __fish_seen_subcommand_from show crl install help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from crl" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -s y -l yes -d 'Do not ask for confirmation'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from install" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the local CA\'s certificate (creating the CA when there is none yet), for HAProxy\'s `ca-file` and for clients'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from help" -f -a "crl" -d 'Print a fresh CRL of the certificates revoked by the local CA, for HAProxy\'s `crl-file`; <state-dir>/ca/crl.pem is kept up to date too'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from help" -f -a "install" -d 'Add the local CA to the system\'s trust store (Debian: /usr/local/share/ca-certificates and update-ca-certificates), after asking like revoke does'
complete -c certctl -n "__fish_certctl_using_subcommand ca; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand list" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand list" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand list" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand list" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand list" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand list" -l json -d 'Print a JSON array instead of a table'
complete -c certctl -n "__fish_certctl_using_subcommand list" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand list" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand list" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand check" -l warning -d 'WARNING when a certificate has fewer days left than this' -r
complete -c certctl -n "__fish_certctl_using_subcommand check" -l critical -d 'CRITICAL when a certificate has fewer days left than this' -r
complete -c certctl -n "__fish_certctl_using_subcommand check" -l probe -d 'Also connect to this TLS endpoint with each certificate\'s first name as SNI, and compare what it serves with the stored certificate (CRITICAL when it differs: renewed but never reloaded). Repeatable, one per proxy' -r
complete -c certctl -n "__fish_certctl_using_subcommand check" -l metrics-file -d 'Also write the metrics in node_exporter\'s textfile format to this file (atomically)' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand check" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand check" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand check" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand check" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand check" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand check" -l json -d 'Print the result as JSON on stdout instead of the status line'
complete -c certctl -n "__fish_certctl_using_subcommand check" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand check" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand check" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -f -a "init-key" -d 'Make a store key: the file that seals private keys and account keys before they leave a node for the shared store (`store_key_file` in the config file)'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -f -a "copy" -d 'Copy every certificate, its settings and records, the accounts and the local CA from one store to another, without issuing anything again'
complete -c certctl -n "__fish_certctl_using_subcommand store; and not __fish_seen_subcommand_from init-key copy help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -l out -d 'Where to write the key (refused when the file exists)' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from init-key" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l from -d 'The store to read: a state directory or etcd://HOST:PORT,.../PREFIX' -r
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l to -d 'The store to write: a state directory or etcd://HOST:PORT,.../PREFIX' -r
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l dry-run -d 'Say what would be copied; write nothing'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "init-key" -d 'Make a store key: the file that seals private keys and account keys before they leave a node for the shared store (`store_key_file` in the config file)'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "copy" -d 'Copy every certificate, its settings and records, the accounts and the local CA from one store to another, without issuing anything again'
complete -c certctl -n "__fish_certctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand sync" -l state-dir -d 'The directory where certctl keeps accounts, certificates, settings and its lock [default: /var/lib/certctl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand sync" -l ssl-dir -d 'The directory the proxy loads bundles from; certctl writes NAME.pem there (leaf, intermediates, key) [default: /etc/haproxy/ssl]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand sync" -l server -d 'The CA: an ACME directory URL, one of letsencrypt, letsencrypt-staging, zerossl, google, buypass, or `local` for certctl\'s own CA (no network) [default: letsencrypt]' -r
complete -c certctl -n "__fish_certctl_using_subcommand sync" -l ca-bundle -d 'A PEM file of extra CA certificates to trust for the ACME server\'s HTTPS, for private or test CAs; the system\'s roots are always trusted' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand sync" -l config -d 'A TOML file of defaults for any option; flags and environment win over it [default: /etc/certctl/config.toml when it exists]' -r -F
complete -c certctl -n "__fish_certctl_using_subcommand sync" -l watch -d 'Keep watching the store and install each change within a second (for a service)'
complete -c certctl -n "__fish_certctl_using_subcommand sync" -s v -l verbose -d 'Say more on stderr; -vv also lists every ACME request'
complete -c certctl -n "__fish_certctl_using_subcommand sync" -s q -l quiet -d 'Print errors only, on stderr; results still go to stdout'
complete -c certctl -n "__fish_certctl_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certctl -n "__fish_certctl_using_subcommand sync" -s V -l version -d 'Print version'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "request" -d 'Get a certificate for one or more names and install its bundle'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "reconfigure" -d 'Change a certificate\'s stored settings (hooks, sockets, challenge, key type, ssl dir, output files) without a new order; shows the change'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "deploy" -d 'Push the stored certificates to their HAProxy sockets now (a failed push stays pending, shown by list and retried by renew, until one succeeds)'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "renew" -d 'Renew the certificates that are due, with the settings stored when they were requested'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "revoke" -d 'Revoke a certificate at its CA, stop managing it and remove its bundle'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "delete" -d 'Stop managing a certificate and remove its bundle, without revoking it'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "concat" -d 'Rebuild bundles in the ssl directory from the stored files, only where they differ'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "account" -d 'The ACME account: its key\'s thumbprint, for stateless HTTP-01 in HAProxy'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "import" -d 'Take over certificates issued by another ACME client, without issuing new ones'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "ca" -d 'The local CA (`--server local`): show its certificate, print its CRL, or trust it'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "list" -d 'List the managed certificates: names, key type, expiry, next renewal, CA, bundle'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "check" -d 'Check the certificates for monitoring (Nagios/Icinga plugin): exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one status line with performance data'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "store" -d 'A store shared by several nodes: make its key, copy state into it or out of it'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "sync" -d 'Install on this node what the shared store holds, newer than its bundles'
complete -c certctl -n "__fish_certctl_using_subcommand help; and not __fish_seen_subcommand_from request reconfigure deploy renew revoke delete concat account import ca list check store sync help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "thumbprint" -d 'Print the account key\'s thumbprint and the HAProxy lines that answer every HTTP-01 challenge from it, so no responder is needed (`request --challenge stateless`)'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "certbot" -d 'Take over certbot\'s certificates, without issuing new ones'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from ca" -f -a "show" -d 'Print the local CA\'s certificate (creating the CA when there is none yet), for HAProxy\'s `ca-file` and for clients'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from ca" -f -a "crl" -d 'Print a fresh CRL of the certificates revoked by the local CA, for HAProxy\'s `crl-file`; <state-dir>/ca/crl.pem is kept up to date too'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from ca" -f -a "install" -d 'Add the local CA to the system\'s trust store (Debian: /usr/local/share/ca-certificates and update-ca-certificates), after asking like revoke does'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "init-key" -d 'Make a store key: the file that seals private keys and account keys before they leave a node for the shared store (`store_key_file` in the config file)'
complete -c certctl -n "__fish_certctl_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "copy" -d 'Copy every certificate, its settings and records, the accounts and the local CA from one store to another, without issuing anything again'
