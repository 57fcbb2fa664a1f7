//! Requesting again, or reconfiguring, never loses a stored setting silently: what the
//! command line does not give keeps its stored value, what it gives replaces it, and an
//! empty value (`--post-hook ''`; `--haproxy-socket none`) clears it. Pure: no I/O.

use super::{CertSettings, Challenge, Global, Outputs};
use crate::cli::{OutputArgs, RequestArgs};
use crate::error::BadInput;
use crate::types::{ChallengeKind, DomainName};

/// Keeps in `wanted` (resolved from the command line, config file and defaults) the
/// `stored` value of every option the command line did not give.
pub fn keep_stored(
    wanted: &mut CertSettings,
    stored: Option<&CertSettings>,
    global: &Global,
    args: &RequestArgs,
) -> Result<(), BadInput> {
    if let Some(stored) = stored {
        wanted.host.outputs = stored.host.outputs.clone();
        let (cert, host) = (&mut wanted.cert, &mut wanted.host);
        if args.key_type.is_none() {
            cert.key_type = stored.cert.key_type;
        }
        if !global.given.server {
            cert.server = stored.cert.server.clone();
        }
        let webroot_only = args.challenge.is_empty()
            && args.http_addr.is_none()
            && matches!(stored.cert.challenge, Challenge::Webroot { .. });
        let how_given = !args.challenge.is_empty()
            || args.http_addr.is_some()
            || args.webroot.is_some()
            || args.tls_alpn.tls_alpn_addr.is_some();
        if !how_given {
            cert.challenge = stored.cert.challenge.clone();
        } else if webroot_only {
            if let Some(webroot) = &args.webroot {
                cert.challenge = Challenge::resolve(
                    Some(ChallengeKind::Webroot),
                    None,
                    Some(webroot),
                    &super::DnsFlags::default(),
                )
                .unwrap_or_else(|_| cert.challenge.clone());
            }
        }
        if args.email.is_none() {
            cert.email = stored.cert.email.clone().or(cert.email.take());
        }
        if args.days.is_none() {
            cert.days = stored.cert.days;
        }
        cert.client_auth |= stored.cert.client_auth;
        if args.ca.profile.is_none() {
            cert.profile = stored.cert.profile.clone();
        }
        if args.ca.preferred_chain.is_none() {
            cert.preferred_chain = stored.cert.preferred_chain.clone();
        }
        if !global.given.ca_bundle {
            host.ca_bundle = stored.host.ca_bundle.clone();
        }
        let h = &args.hooks;
        if h.pre_hook.is_none() {
            host.hooks.pre = stored.host.hooks.pre.clone();
        }
        if h.deploy_hook.is_none() {
            host.hooks.deploy = stored.host.hooks.deploy.clone();
        }
        if h.post_hook.is_none() {
            host.hooks.post = stored.host.hooks.post.clone();
        }
        if args.haproxy_sockets.is_empty() {
            host.haproxy_sockets = stored.host.haproxy_sockets.clone();
        }
        if !global.given.ssl_dir && stored.host.ssl_dir.is_some() {
            host.ssl_dir = stored.host.ssl_dir.clone();
        }
    }
    // an empty hook clears it
    for hook in [
        &mut wanted.host.hooks.pre,
        &mut wanted.host.hooks.deploy,
        &mut wanted.host.hooks.post,
    ] {
        if hook.as_deref().is_some_and(|h| h.trim().is_empty()) {
            *hook = None;
        }
    }
    given_outputs(&mut wanted.host.outputs, &args.outputs)
}

/// The output options given replace the stored ones; '' removes one.
fn given_outputs(outputs: &mut Outputs, args: &OutputArgs) -> Result<(), BadInput> {
    for (slot, given, flag) in [
        (&mut outputs.cert_file, &args.cert_file, "--cert-file"),
        (&mut outputs.key_file, &args.key_file, "--key-file"),
        (&mut outputs.chain_file, &args.chain_file, "--chain-file"),
        (
            &mut outputs.fullchain_file,
            &args.fullchain_file,
            "--fullchain-file",
        ),
    ] {
        match given.as_deref().map(std::path::Path::new) {
            None => {}
            Some(p) if p.as_os_str().is_empty() => *slot = None,
            Some(p) if p.file_name().is_none() || p.is_dir() => {
                return Err(BadInput::new(format!(
                    "{flag} {} is not a file path",
                    p.display()
                )));
            }
            Some(p) => *slot = Some(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
        }
    }
    match args.owner.as_deref() {
        None => {}
        Some("") => outputs.owner = None,
        Some(o)
            if o.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) =>
        {
            outputs.owner = Some(o.to_owned())
        }
        Some(o) => return Err(BadInput::new(format!("--owner {o:?} is not USER:GROUP"))),
    }
    match args.mode.as_deref() {
        None => {}
        Some("") => outputs.mode = None,
        Some(m) => match u32::from_str_radix(m, 8) {
            Ok(mode) if mode <= 0o777 => outputs.mode = Some(mode),
            _ => {
                return Err(BadInput::new(format!(
                    "--mode {m:?} is not an octal mode like 640"
                )));
            }
        },
    }
    Ok(())
}

/// One stored setting that changes: what, from, to (for people to read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub what: &'static str,
    pub old: String,
    pub new: String,
}

/// The changes from `old` to `new`, names aside (see `names_added_removed`).
pub fn changes(old: &CertSettings, new: &CertSettings) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |what, old: String, new: String| {
        if old != new {
            out.push(Change { what, old, new });
        }
    };
    push(
        "key type",
        format!("{:?}", old.cert.key_type).to_lowercase(),
        format!("{:?}", new.cert.key_type).to_lowercase(),
    );
    push(
        "CA",
        old.cert.server.to_string(),
        new.cert.server.to_string(),
    );
    push(
        "challenge",
        challenge(&old.cert.challenge),
        challenge(&new.cert.challenge),
    );
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    push("profile", opt(&old.cert.profile), opt(&new.cert.profile));
    push(
        "preferred chain",
        opt(&old.cert.preferred_chain),
        opt(&new.cert.preferred_chain),
    );
    push(
        "pre-hook",
        opt(&old.host.hooks.pre),
        opt(&new.host.hooks.pre),
    );
    push(
        "deploy-hook",
        opt(&old.host.hooks.deploy),
        opt(&new.host.hooks.deploy),
    );
    push(
        "post-hook",
        opt(&old.host.hooks.post),
        opt(&new.host.hooks.post),
    );
    let sockets = |s: &CertSettings| {
        let all: Vec<String> = s
            .host
            .haproxy_sockets
            .iter()
            .map(|s| s.to_string())
            .collect();
        if all.is_empty() {
            "(none)".into()
        } else {
            all.join(", ")
        }
    };
    push("HAProxy sockets", sockets(old), sockets(new));
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or_else(|| "(default)".into(), |p| p.display().to_string())
    };
    push("ssl dir", path(&old.host.ssl_dir), path(&new.host.ssl_dir));
    push(
        "CA bundle",
        path(&old.host.ca_bundle),
        path(&new.host.ca_bundle),
    );
    push(
        "output files",
        outputs(&old.host.outputs),
        outputs(&new.host.outputs),
    );
    push(
        "days",
        old.cert.days.map(|d| d.to_string()).unwrap_or_default(),
        new.cert.days.map(|d| d.to_string()).unwrap_or_default(),
    );
    out
}

/// The names in `new` and not in `old`, and those in `old` and not in `new`.
pub fn names_added_removed(
    old: &[DomainName],
    new: &[DomainName],
) -> (Vec<DomainName>, Vec<DomainName>) {
    let added = new.iter().filter(|d| !old.contains(d)).cloned().collect();
    let removed = old.iter().filter(|d| !new.contains(d)).cloned().collect();
    (added, removed)
}

fn outputs(o: &Outputs) -> String {
    let files: Vec<String> = [
        ("cert", &o.cert_file),
        ("key", &o.key_file),
        ("chain", &o.chain_file),
        ("fullchain", &o.fullchain_file),
    ]
    .iter()
    .filter_map(|(what, p)| p.as_ref().map(|p| format!("{what} {}", p.display())))
    .collect();
    if files.is_empty() {
        return "(none)".into();
    }
    let mut text = files.join(", ");
    if let Some(owner) = &o.owner {
        text.push_str(&format!(", owner {owner}"));
    }
    if let Some(mode) = o.mode {
        text.push_str(&format!(", mode {mode:o}"));
    }
    text
}

fn challenge(c: &Challenge) -> String {
    match c {
        Challenge::Standalone { http_addr } => format!("standalone on {http_addr}"),
        Challenge::Webroot { webroot } => format!("webroot {}", webroot.display()),
        Challenge::TlsAlpn01 { tls_alpn_addr } => format!("tls-alpn-01 on {tls_alpn_addr}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn settings(argv: &[&str]) -> (CertSettings, Global, RequestArgs) {
        let cli = Cli::parse_from(argv);
        let config = super::super::ConfigFile::default();
        let global = Global::resolve(&cli.global, &config).unwrap();
        let Command::Request(args) = cli.command else {
            panic!("not request")
        };
        let s = super::super::RequestSettings::resolve(&global, &config, &args).unwrap();
        (s.wanted, global, *args)
    }

    #[test]
    fn options_not_given_keep_their_stored_values() {
        let (stored, _, _) = settings(&[
            "certctl",
            "--ssl-dir",
            "/srv/ssl",
            "request",
            "a.fr",
            "b.a.fr",
            "--post-hook",
            "reload",
            "--key-type",
            "rsa2048",
            "--haproxy-socket",
            "/run/h.sock",
        ]);
        let (mut wanted, global, args) = settings(&["certctl", "request", "a.fr"]);
        keep_stored(&mut wanted, Some(&stored), &global, &args).unwrap();
        assert_eq!(wanted.host, stored.host);
        assert_eq!(wanted.cert.key_type, stored.cert.key_type);
        let (added, removed) = names_added_removed(&stored.cert.domains, &wanted.cert.domains);
        assert!(added.is_empty());
        assert_eq!(removed.len(), 1);
    }

    #[test]
    fn options_given_replace_and_empty_clears() {
        let (stored, _, _) = settings(&["certctl", "request", "a.fr", "--post-hook", "reload"]);
        let (mut wanted, global, args) = settings(&[
            "certctl",
            "request",
            "a.fr",
            "--post-hook",
            "",
            "--deploy-hook",
            "d",
        ]);
        keep_stored(&mut wanted, Some(&stored), &global, &args).unwrap();
        assert_eq!(wanted.host.hooks.post, None);
        assert_eq!(wanted.host.hooks.deploy.as_deref(), Some("d"));
        let what: Vec<_> = changes(&stored, &wanted).iter().map(|c| c.what).collect();
        assert_eq!(what, ["deploy-hook", "post-hook"]);
    }
}
