//! Reading HAProxy's configuration for two things only: whether it names a bundle file
//! itself (`bind :853 ssl crt /etc/haproxy/ssl/dns.pem`), in which case HAProxy does not
//! start without that file and certctl must leave it in place; and whether a `server` line
//! checks backends with a CRL (HAProxy 2.6 applies a CRL committed through its runtime API
//! to bind lines only: server lines need a reload). Never writes it.

use std::path::{Path, PathBuf};

/// Where HAProxy's configuration usually is.
pub const DEFAULT_CONFIG: &str = "/etc/haproxy/haproxy.cfg";

/// The line (number, text) of `config_text` whose `crt` names `bundle`, if any. A `crt`
/// naming the bundle's directory loads every file in it and does not count.
pub fn names_bundle(config_text: &str, bundle: &Path) -> Option<(usize, String)> {
    config_text.lines().enumerate().find_map(|(i, line)| {
        let code = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = code.split_whitespace().collect();
        let named = words
            .windows(2)
            .any(|w| w[0] == "crt" && Path::new(w[1]) == bundle);
        named.then(|| (i + 1, line.trim().to_owned()))
    })
}

/// The line (number, text) of `config_text` where a `server` or `default-server` checks
/// backends with the CRL at `crl` (`crl-file`), if any.
pub fn server_uses_crl(config_text: &str, crl: &Path) -> Option<(usize, String)> {
    config_text.lines().enumerate().find_map(|(i, line)| {
        let code = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = code.split_whitespace().collect();
        let server = matches!(words.first(), Some(&"server" | &"default-server"));
        let named = words
            .windows(2)
            .any(|w| w[0] == "crl-file" && Path::new(w[1]) == crl);
        (server && named).then(|| (i + 1, line.trim().to_owned()))
    })
}

/// Where one of the configuration files of the HAProxy process `pid` checks backends with
/// the CRL at `crl`: (file, line, text).
pub fn server_line_using_crl(pid: u32, crl: &Path) -> Option<(PathBuf, usize, String)> {
    configs_of_process(pid).into_iter().find_map(|file| {
        let text = crate::durable::read_small_file(&file).ok()?;
        server_uses_crl(&String::from_utf8_lossy(&text), crl).map(|(n, line)| (file, n, line))
    })
}

/// The configuration file to read: the one given, else the default when it exists.
pub fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()),
    }
}

/// Where `config` names `bundle`: (file, line, text); None when it does not, or when the
/// file cannot be read (said at verbose level).
pub fn where_named(config: Option<&Path>, bundle: &Path) -> Option<(PathBuf, usize, String)> {
    let path = config_path(config)?;
    match crate::durable::read_small_file(&path) {
        Ok(bytes) => {
            names_bundle(&String::from_utf8_lossy(&bytes), bundle).map(|(n, line)| (path, n, line))
        }
        Err(e) => {
            crate::log::verbose(format_args!("reading {}: {e}", path.display()));
            None
        }
    }
}

/// The configuration files of the HAProxy process `pid` on this host, from its command line
/// (`-f FILE` or `-f DIR`, a directory's `*.cfg` files in lexical order, as HAProxy reads
/// them; relative paths from its working directory). Empty when the process is not
/// HAProxy's or cannot be read.
pub fn configs_of_process(pid: u32) -> Vec<PathBuf> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
    if !comm.trim().starts_with("haproxy") {
        return Vec::new();
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return Vec::new();
    };
    let cwd = std::fs::read_link(proc_dir.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut files = Vec::new();
    for pair in args.windows(2).filter(|w| w[0] == "-f") {
        let path = cwd.join(&pair[1]);
        if path.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "cfg") && p.is_file())
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(path);
        }
    }
    files
}

/// Where any of `configs` names `bundle`: (file, line, text).
pub fn where_named_in(configs: &[PathBuf], bundle: &Path) -> Option<(PathBuf, usize, String)> {
    configs
        .iter()
        .find_map(|config| where_named(Some(config), bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_lines_that_name_the_crl_count() {
        let cfg = "frontend f\n    bind :443 ssl crt /s/ ca-file /ca.pem crl-file /crl.pem\n\
                   backend b\n    default-server ssl verify required crl-file /other.pem\n    \
                   server web1 10.0.0.1:443 ssl ca-file /ca.pem crl-file /crl.pem # backend\n";
        let found = server_uses_crl(cfg, Path::new("/crl.pem"));
        assert_eq!(found.map(|(n, _)| n), Some(5));
        assert_eq!(
            server_uses_crl(cfg, Path::new("/other.pem")).map(|(n, _)| n),
            Some(4)
        );
        assert_eq!(server_uses_crl(cfg, Path::new("/ca.pem")), None);
    }

    #[test]
    fn the_configuration_of_a_process_that_is_not_haproxy_is_not_read() {
        assert_eq!(
            configs_of_process(std::process::id()),
            Vec::<PathBuf>::new()
        );
        assert_eq!(configs_of_process(u32::MAX), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_bundle_named_on_a_bind_line_is_found_and_a_directory_is_not() {
        let cfg = "frontend dns\n    bind :853 ssl crt /etc/haproxy/ssl/dns.pem # DoT\n\
                   frontend web\n    bind :443 ssl crt /etc/haproxy/ssl/ alpn h2\n\
                   #   bind :8443 ssl crt /etc/haproxy/ssl/old.pem\n";
        let found = names_bundle(cfg, Path::new("/etc/haproxy/ssl/dns.pem"));
        assert_eq!(found.map(|(n, _)| n), Some(2));
        assert_eq!(
            names_bundle(cfg, Path::new("/etc/haproxy/ssl/web.pem")),
            None
        );
        assert_eq!(
            names_bundle(cfg, Path::new("/etc/haproxy/ssl/old.pem")),
            None
        );
    }
}
