# shellcheck shell=bash
# The loopback lab shared by scripts/demo and scripts/bench (sourced, not run; test.sh,
# package and test-package use only heading, die and lab_ensure_tools):
# pebble-challtestsrv (DNS: every name -> 127.0.0.1), Pebble (ACME CA, HTTPS with a
# throwaway CA), HAProxy forwarding /.well-known/acme-challenge/ to one responder port,
# all on free 127.0.0.1 ports, in LAB_DIR. Every process started is recorded in LAB_PIDS;
# the caller's EXIT trap calls lab_stop. Nothing here leaves loopback.
#
# The caller sets `set -euo pipefail`, defines nothing of this file's names, and then:
#   lab_ensure_tools pebble haproxy openssl curl   # apt-get installs what is missing
#   LAB_DIR=$(mktemp -d ...); lab_ports; lab_pki
#   lab_start_challtestsrv; lab_start_pebble PEBBLE_VA_NOSLEEP=1 ...; lab_start_haproxy
#   ... LAB_ACME_URL, LAB_CA, LAB_RESP (responder port), LAB_HTTP, LAB_HTTPS ...
#   lab_stop   (in the EXIT trap)

# Debian puts haproxy in /usr/sbin, which is not on a normal user's PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

LAB_PIDS=()
LAB_DIR=

heading() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# lab_ensure_tools PKG...: install the Debian packages whose commands are missing.
# Package names map to commands: pebble -> pebble, pebble-challtestsrv; time -> /usr/bin/time;
# dpkg-dev -> dpkg-shlibdeps; systemd -> systemd-analyze; man-db -> man; bind9 -> named,
# tsig-keygen; bind9-utils -> nsupdate; bind9-dnsutils -> dig; a Python plugin -> its
# module directory; any other -> itself.
lab_ensure_tools() {
    local -a missing=() pkgs=()
    local pkg cmd
    for pkg; do
        local -a cmds
        case $pkg in
        pebble) cmds=(pebble pebble-challtestsrv) ;;
        prometheus) cmds=(promtool) ;;
        time) cmds=(/usr/bin/time) ;;
        dpkg-dev) cmds=(dpkg-shlibdeps) ;;
        systemd) cmds=(systemd-analyze) ;;
        man-db) cmds=(man) ;;
        bind9) cmds=(named tsig-keygen) ;;
        etcd-server) cmds=(etcd) ;;
        etcd-client) cmds=(etcdctl) ;;
        protobuf-compiler) cmds=(protoc) ;;
        bind9-utils) cmds=(nsupdate) ;;
        bind9-dnsutils) cmds=(dig) ;;
        python3-certbot-dns-rfc2136) cmds=(/usr/lib/python3/dist-packages/certbot_dns_rfc2136) ;;
        *) cmds=("$pkg") ;;
        esac
        for cmd in "${cmds[@]}"; do
            if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -e $cmd ]]; then
                missing+=("$cmd")
                [[ " ${pkgs[*]} " == *" $pkg "* ]] || pkgs+=("$pkg")
            fi
        done
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    heading "missing ${missing[*]}: installing ${pkgs[*]} with apt-get"
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${missing[*]}; this script needs them.
Install them, then run this script again:
    sudo apt-get update && sudo apt-get install -y ${pkgs[*]}
(Debian 12 / Ubuntu packages; 'pebble' provides pebble and pebble-challtestsrv)"
    fi
    # no recommended packages: prometheus would bring node-exporter, a daemon listening on
    # every interface; the tests only need the tools. Nothing is started either (exit 101
    # from policy-rc.d: "action forbidden"), so a package's daemon never runs here.
    local policy=/usr/sbin/policy-rc.d policy_added=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && policy_added=1
    fi
    local installed=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade \
            --no-install-recommends "${pkgs[@]}"; } </dev/null && installed=1
    [[ $policy_added == 1 ]] && rm -f "$policy"
    if [[ $installed != 1 ]]; then
        die "apt-get could not install ${pkgs[*]}; install them by hand:
    apt-get update && apt-get install -y ${pkgs[*]}"
    fi
    for cmd in "${missing[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -e $cmd ]] ||
            die "$cmd is still missing after installing ${pkgs[*]}"
    done
}

# lab_free_ports N: print N distinct loopback ports, each free for TCP and UDP.
lab_free_ports() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'PY'
import socket, sys
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    held += [t, u]  # keep them bound so every port printed is distinct
    ports.append(port)
print(" ".join(map(str, ports)))
PY
    else
        # No python3: probe random high ports with bash's /dev/tcp (TCP only).
        local -a ports=()
        local port
        while [[ ${#ports[@]} -lt $1 ]]; do
            port=$((20000 + RANDOM % 40000))
            [[ " ${ports[*]} " == *" $port "* ]] && continue
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                ports+=("$port")
            fi
        done
        echo "${ports[*]}"
    fi
}

# lab_ports: choose the lab's ports (LAB_DNS LAB_CTS LAB_ACME LAB_MGMT LAB_HTTP LAB_HTTPS
# LAB_TLSALPN LAB_RESP) and the URLs derived from them.
# shellcheck disable=SC2034 # the LAB_* values are for the scripts that source this file
lab_ports() {
    read -r LAB_DNS LAB_CTS LAB_ACME LAB_MGMT LAB_HTTP LAB_HTTPS LAB_TLSALPN LAB_RESP \
        <<<"$(lab_free_ports 8)"
    LAB_ACME_URL="https://127.0.0.1:$LAB_ACME/dir"
    LAB_MGMT_URL="https://127.0.0.1:$LAB_MGMT"
}

# lab_wait_for WHAT PID LOG CMD...: retry CMD every 0.1 s for up to 30 s while PID is alive.
lab_wait_for() {
    local what=$1 pid=$2 log=$3 i
    shift 3
    for ((i = 0; i < 300; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited during startup (log: $log)"
        sleep 0.1
    done
    die "$what did not answer within 30 s (log: $log)"
}

# lab_pki: a throwaway CA (LAB_CA = $LAB_DIR/ca.pem) and a leaf for localhost/127.0.0.1
# for Pebble's own HTTPS listener; a self-signed placeholder bundle for HAProxy, kept
# outside the ssl directory (HAProxy 2.6 will not start on an empty crt directory).
lab_pki() {
    LAB_CA=$LAB_DIR/ca.pem
    cat >"$LAB_DIR/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = certctl lab
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[pebble_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[placeholder_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:placeholder.invalid
EOF
    local -a ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 -config "$LAB_DIR/openssl.cnf" -extensions ca_ext "${ec[@]}" -days 2 \
        -subj "/CN=certctl lab CA for Pebble's listener" \
        -keyout "$LAB_DIR/ca.key" -out "$LAB_CA" 2>/dev/null
    openssl req -new -config "$LAB_DIR/openssl.cnf" "${ec[@]}" -subj "/CN=localhost" \
        -keyout "$LAB_DIR/pebble.key" -out "$LAB_DIR/pebble.csr" 2>/dev/null
    openssl x509 -req -in "$LAB_DIR/pebble.csr" -CA "$LAB_CA" -CAkey "$LAB_DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 \
        -extfile "$LAB_DIR/openssl.cnf" -extensions pebble_ext -out "$LAB_DIR/pebble.pem" 2>/dev/null
    openssl req -x509 -config "$LAB_DIR/openssl.cnf" -extensions placeholder_ext "${ec[@]}" -days 2 \
        -subj "/CN=placeholder.invalid" -keyout "$LAB_DIR/placeholder.key" \
        -out "$LAB_DIR/placeholder.crt" 2>/dev/null
    cat "$LAB_DIR/placeholder.crt" "$LAB_DIR/placeholder.key" >"$LAB_DIR/placeholder.pem"
    chmod 600 "$LAB_DIR/placeholder.pem"
}

# lab_start_challtestsrv: DNS on LAB_DNS answering 127.0.0.1 (A only); every other
# listener disabled, since each defaults to a fixed port.
lab_start_challtestsrv() {
    local -a args=(-dns01 "127.0.0.1:$LAB_DNS" -management "127.0.0.1:$LAB_CTS" -defaultIPv6 ""
        -http01 "" -https01 "" -tlsalpn01 "")
    local help
    help=$(pebble-challtestsrv -h 2>&1 || true)
    if [[ $help == *"-doh"* ]]; then args+=(-doh ""); fi
    pebble-challtestsrv "${args[@]}" >"$LAB_DIR/challtestsrv.log" 2>&1 </dev/null &
    LAB_CTS_PID=$!
    LAB_PIDS+=("$LAB_CTS_PID")
    lab_wait_for pebble-challtestsrv "$LAB_CTS_PID" "$LAB_DIR/challtestsrv.log" \
        curl -s -o /dev/null "http://127.0.0.1:$LAB_CTS/"
}

# lab_start_pebble [VAR=VALUE...]: Pebble on LAB_ACME (ACME) and LAB_MGMT (management),
# validating HTTP-01 on LAB_HTTP (HAProxy), resolving names at LAB_PEBBLE_DNS (HOST:PORT;
# challtestsrv's 127.0.0.1:LAB_DNS by default), with the given environment (PEBBLE_VA_NOSLEEP,
# PEBBLE_AUTHZREUSE, PEBBLE_WFE_NONCEREJECT...). Log: $LAB_DIR/pebble.log (one line per request).
lab_start_pebble() {
    cat >"$LAB_DIR/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$LAB_ACME",
    "managementListenAddress": "127.0.0.1:$LAB_MGMT",
    "certificate": "$LAB_DIR/pebble.pem",
    "privateKey": "$LAB_DIR/pebble.key",
    "httpPort": $LAB_HTTP,
    "tlsPort": $LAB_TLSALPN,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
    env "$@" pebble -config "$LAB_DIR/pebble.json" -dnsserver "${LAB_PEBBLE_DNS:-127.0.0.1:$LAB_DNS}" \
        >"$LAB_DIR/pebble.log" 2>&1 </dev/null &
    LAB_PEBBLE_PID=$!
    LAB_PIDS+=("$LAB_PEBBLE_PID")
    lab_wait_for pebble "$LAB_PEBBLE_PID" "$LAB_DIR/pebble.log" \
        curl -sf --cacert "$LAB_CA" "$LAB_ACME_URL"
}

# lab_start_bind ZONE: BIND 9 (`named -g`) on LAB_BIND (127.0.0.1, UDP and TCP), primary for
# ZONE (SOA, NS ns1, every name -> 127.0.0.1 as A, so HTTP-01 names resolve too) and, with
# recursion for loopback clients, for a local root zone, so a lookup never leaves this
# machine. TXT updates below ZONE are allowed for the key LAB_TSIG_NAME, made by tsig-keygen
# (hmac-sha256) in LAB_TSIG_KEY (BIND's format); LAB_TSIG_SECRET is its secret. No rndc port.
# Log: $LAB_DIR/named.log. Point Pebble at it: LAB_PEBBLE_DNS=127.0.0.1:$LAB_BIND.
# shellcheck disable=SC2034 # the LAB_* values are for the scripts that source this file
lab_start_bind() {
    local zone=$1 dir=$LAB_DIR/bind
    [[ -n ${LAB_BIND:-} ]] || read -r LAB_BIND <<<"$(lab_free_ports 1)"
    mkdir -p "$dir"
    LAB_TSIG_NAME=certctl-lab-key
    LAB_TSIG_KEY=$dir/key.conf
    tsig-keygen -a hmac-sha256 "$LAB_TSIG_NAME" >"$LAB_TSIG_KEY"
    chmod 600 "$LAB_TSIG_KEY"
    LAB_TSIG_SECRET=$(sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$LAB_TSIG_KEY")
    [[ -n $LAB_TSIG_SECRET ]] || die "tsig-keygen wrote no secret to $LAB_TSIG_KEY"
    cat >"$dir/root.zone" <<EOF
\$TTL 60
@ IN SOA ns1.root. hostmaster.root. 1 60 60 600 60
@ IN NS ns1.root.
ns1.root. IN A 127.0.0.1
EOF
    cat >"$dir/$zone.zone" <<EOF
\$TTL 60
@ IN SOA ns1.$zone. hostmaster.$zone. 1 60 60 600 60
@ IN NS ns1.$zone.
ns1 IN A 127.0.0.1
@ IN A 127.0.0.1
* IN A 127.0.0.1
EOF
    cat >"$dir/named.conf" <<EOF
include "$LAB_TSIG_KEY";
options {
    directory "$dir";
    listen-on port $LAB_BIND { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion yes;
    allow-recursion { 127.0.0.1; };
    pid-file none;
    dnssec-validation no;
    notify no;
    session-keyfile "$dir/session.key";
    managed-keys-directory "$dir";
};
controls { };
zone "." { type primary; file "$dir/root.zone"; };
zone "$zone" {
    type primary;
    file "$dir/$zone.zone";
    update-policy { grant $LAB_TSIG_NAME subdomain $zone. TXT; };
};
EOF
    named -g -u root -c "$dir/named.conf" >"$LAB_DIR/named.log" 2>&1 </dev/null &
    LAB_BIND_PID=$!
    LAB_PIDS+=("$LAB_BIND_PID")
    lab_wait_for named "$LAB_BIND_PID" "$LAB_DIR/named.log" grep -q running "$LAB_DIR/named.log"
    lab_wait_for named "$LAB_BIND_PID" "$LAB_DIR/named.log" \
        dig +short +time=1 +tries=1 -p "$LAB_BIND" @127.0.0.1 "ns1.$zone" A
}

# lab_stop_pebble: stop Pebble and wait until its ACME port refuses connections.
lab_stop_pebble() {
    local pid kept=()
    kill "$LAB_PEBBLE_PID" 2>/dev/null || true
    wait "$LAB_PEBBLE_PID" 2>/dev/null || true
    for pid in "${LAB_PIDS[@]}"; do [[ $pid == "$LAB_PEBBLE_PID" ]] || kept+=("$pid"); done
    LAB_PIDS=("${kept[@]}")
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$LAB_ACME") 2>/dev/null || return 0
        sleep 0.1
    done
    die "Pebble still accepts connections on 127.0.0.1:$LAB_ACME"
}

# lab_start_haproxy: HTTP on LAB_HTTP forwarding /.well-known/acme-challenge/ to
# 127.0.0.1:LAB_RESP (certctl's responder, or certbot --standalone), HTTPS on LAB_HTTPS
# loading the placeholder and every bundle of $LAB_DIR/ssl/; admin socket $LAB_DIR/haproxy.sock.
lab_start_haproxy() {
    mkdir -p "$LAB_DIR/ssl"
    chmod 700 "$LAB_DIR/ssl"
    cat >"$LAB_DIR/haproxy.cfg" <<EOF
global
    stats socket $LAB_DIR/haproxy.sock level admin
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http
    bind 127.0.0.1:$LAB_HTTP
    acl acme path_beg /.well-known/acme-challenge/
    http-request redirect scheme https unless acme
    use_backend certctl if acme

backend certctl
    server certctl 127.0.0.1:$LAB_RESP

frontend https
    bind 127.0.0.1:$LAB_HTTPS ssl crt $LAB_DIR/placeholder.pem crt $LAB_DIR/ssl/
    http-request return status 200 content-type text/plain string "served by haproxy\n"
EOF
    haproxy -c -q -f "$LAB_DIR/haproxy.cfg" >"$LAB_DIR/haproxy-check.log" 2>&1 ||
        die "haproxy rejected $LAB_DIR/haproxy.cfg (see haproxy-check.log)"
    haproxy -W -db -f "$LAB_DIR/haproxy.cfg" -p "$LAB_DIR/haproxy.pid" \
        >"$LAB_DIR/haproxy.log" 2>&1 </dev/null &
    LAB_HAPROXY_PID=$!
    LAB_PIDS+=("$LAB_HAPROXY_PID")
    lab_wait_for haproxy "$LAB_HAPROXY_PID" "$LAB_DIR/haproxy.log" \
        curl -s -o /dev/null "http://127.0.0.1:$LAB_HTTP/"
}

# lab_stop: stop every process this file started (for the caller's EXIT trap).
lab_stop() {
    local pid
    for pid in "${LAB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${LAB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    LAB_PIDS=()
}

# lab_show_logs: the last 40 lines of each lab log, to stderr (after a failure).
lab_show_logs() {
    local log
    [[ -n $LAB_DIR && -d $LAB_DIR ]] || return 0
    for log in "$LAB_DIR"/*.log; do
        [[ -s $log ]] || continue
        printf '\n--- %s (last 40 lines) ---\n' "${log##*/}" >&2
        tail -n 40 "$log" >&2
    done
}
