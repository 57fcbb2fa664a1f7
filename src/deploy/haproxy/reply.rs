//! What HAProxy's runtime API says, read into types (`show ssl cert`, its serial, the replies
//! to `set ssl cert`), and what certctl says to it: names escaped by the CLI's rules so that
//! no path can start a command of its own. Pure functions over text.

use std::path::Path;

use super::Error;

/// `show ssl cert`: names with an open transaction (`*name`) and loaded certificates.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CertList {
    pub transactions: Vec<String>,
    pub certificates: Vec<String>,
}

pub fn parse_cert_list(reply: &str) -> CertList {
    let mut list = CertList::default();
    for line in reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        // a bare `*` (or `* name`) is no name: skipped, or trimmed (found by fuzzing)
        match line.strip_prefix('*').map(str::trim) {
            Some("") => {}
            Some(name) => list.transactions.push(name.to_owned()),
            None => list.certificates.push(line.to_owned()),
        }
    }
    list
}

/// The name HAProxy uses for the bundle at `path`: the same path, or (under a chroot, or a
/// relative `crt`) the one entry that ends with the same file name.
pub fn find_cert(certificates: &[String], path: &Path) -> Result<Option<String>, Error> {
    if let Some(exact) = certificates.iter().find(|c| is_same_cert(c, path)) {
        return Ok(Some(exact.clone()));
    }
    let Some(file) = path.file_name().map(|f| f.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    let candidates: Vec<&String> = certificates
        .iter()
        .filter(|c| c.rsplit('/').next() == Some(file.as_str()))
        .collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Error::Ambiguous {
            name: path.display().to_string(),
            candidates: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

pub(super) fn is_same_cert(name: &str, path: &Path) -> bool {
    Path::new(name) == path
}

/// The `Serial:` line of `show ssl cert NAME`.
pub fn parse_serial(reply: &str) -> Option<String> {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("Serial:"))
        .map(|s| s.trim().to_owned())
}

pub(super) fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_lowercase();
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// The reply to `set ssl cert`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SetReply {
    Ok,
    NotReferenced,
    Other,
}

impl SetReply {
    pub(super) fn parse(reply: &str) -> Self {
        if reply.starts_with("Transaction created for certificate")
            || reply.starts_with("Transaction updated for certificate")
        {
            Self::Ok
        } else if reply.starts_with("Can't replace a certificate which is not referenced") {
            Self::NotReferenced
        } else {
            Self::Other
        }
    }
}

pub(super) fn expect(command: &str, reply: &str, parse: fn(&str) -> SetReply) -> Result<(), Error> {
    match parse(reply) {
        SetReply::Ok => Ok(()),
        _ if reply.trim().is_empty() => Err(Error::Refused {
            command: first_line(command),
            reply: "no answer (a payload larger than tune.bufsize is dropped silently)".into(),
        }),
        _ => Err(Error::Refused {
            command: first_line(command),
            reply: tidy(reply),
        }),
    }
}

pub(super) fn first_line(command: &str) -> String {
    command.lines().next().unwrap_or_default().to_owned()
}

/// A reply as one line for a message: whitespace runs become one space, anything that is
/// not printable is shown as `\xNN` (a socket that is not HAProxy may answer with binary
/// bytes), and at most `SHOWN_REPLY` characters are kept.
pub(super) fn tidy(reply: &str) -> String {
    let one_line = reply.split_whitespace().collect::<Vec<_>>().join(" ");
    printable(&one_line, SHOWN_REPLY)
}

/// How much of a reply a message shows.
const SHOWN_REPLY: usize = 300;

/// `text` with every character outside printable ASCII escaped, cut after `max` characters.
pub(super) fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (shown, c) in text.chars().enumerate() {
        if shown == max {
            out.push_str("...");
            break;
        }
        match c {
            ' '..='~' => out.push(c),
            other => {
                let mut bytes = [0u8; 4];
                for b in other.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
        }
    }
    out
}

/// Whether a reply to `show ssl cert` is one: HAProxy starts it with `# transaction` (when
/// one is open) or `# filename`, and always has the `# filename` header, except when it
/// loaded no certificate at all: then its reply is the blank line that ends every answer.
/// Anything else means the socket is not HAProxy's admin socket (another daemon, or an
/// HAProxy socket below `level admin`).
pub fn is_cert_list(reply: &str) -> bool {
    if reply == "\n" {
        return true;
    }
    let first = reply.lines().map(str::trim).find(|l| !l.is_empty());
    matches!(first, Some("# transaction" | "# filename"))
        && reply.lines().any(|l| l.trim() == "# filename")
}

/// One argument of a runtime-API command, escaped by HAProxy's rules: the CLI splits a
/// line into commands at `;` and a command into arguments at spaces and tabs, unless the
/// character is preceded by a backslash (which is itself escaped as `\\`). A line break
/// cannot be escaped: a name with any control character (tabs too) is refused.
pub fn cli_arg(raw: &str) -> Result<String, Error> {
    if raw.chars().any(char::is_control) {
        return Err(Error::UnsafeName {
            name: printable(raw, SHOWN_REPLY),
        });
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, ' ' | ';' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Replies captured from HAProxy 2.6.12.
    const SHOW_WITH_TRANSACTION: &str = "# transaction\n*/etc/haproxy/ssl/a.pem\n# filename\n/etc/haproxy/ph.pem\n/etc/haproxy/ssl/a.pem\n\n";
    const SHOW_CERT: &str = "Filename: /tmp/h/ssl/mon-app.test.pem\nStatus: Used\nSerial: 5874009307FBCABC\n\
        notBefore: Nov 26 06:25:10 2026 GMT\nnotAfter: Nov 26 06:25:09 2031 GMT\n";

    #[test]
    fn show_ssl_cert_lists_transactions_and_certificates() {
        let list = parse_cert_list(SHOW_WITH_TRANSACTION);
        assert_eq!(list.transactions, vec!["/etc/haproxy/ssl/a.pem"]);
        assert_eq!(
            list.certificates,
            vec!["/etc/haproxy/ph.pem", "/etc/haproxy/ssl/a.pem"]
        );
        assert_eq!(
            parse_cert_list("# filename\n/x.pem\n\n").transactions,
            Vec::<String>::new()
        );
        // regression (fuzzing): a line of a lone `*` is not a transaction named ""
        assert_eq!(
            parse_cert_list("*\n* /y.pem\n/x.pem\n"),
            CertList {
                transactions: vec!["/y.pem".into()],
                certificates: vec!["/x.pem".into()],
            }
        );
    }

    #[test]
    fn set_replies_are_typed() {
        assert_eq!(
            SetReply::parse("Transaction created for certificate /x.pem!\n\n"),
            SetReply::Ok
        );
        assert_eq!(
            SetReply::parse("Transaction updated for certificate /x.pem!\n\n"),
            SetReply::Ok
        );
        assert_eq!(
            SetReply::parse(
                "Can't replace a certificate which is not referenced by the configuration!\nCan't update /x.pem!\n\n"
            ),
            SetReply::NotReferenced
        );
        let err = expect("set ssl cert /x.pem <<\n...", "", SetReply::parse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tune.bufsize"), "{err}");
    }

    #[test]
    fn serial_is_read_and_compared_without_case_or_leading_zeros() {
        assert_eq!(parse_serial(SHOW_CERT).as_deref(), Some("5874009307FBCABC"));
        assert!(same_serial("05874009307FBCABC", "5874009307fbcabc"));
        assert!(!same_serial("", ""));
        assert_eq!(
            parse_serial(
                "Can't display the certificate: Not found or the certificate is a bundle!\n"
            ),
            None
        );
    }

    #[test]
    fn the_name_haproxy_uses_is_matched_not_assumed() {
        let certs = vec![
            "/etc/haproxy/ph.pem".to_owned(),
            "ssl/a.pem".to_owned(),
            "/etc/haproxy/ssl/b.pem".to_owned(),
        ];
        assert_eq!(
            find_cert(&certs, Path::new("/etc/haproxy/ssl/b.pem"))
                .unwrap()
                .as_deref(),
            Some("/etc/haproxy/ssl/b.pem")
        );
        // chroot or relative crt path: the same file name
        assert_eq!(
            find_cert(&certs, Path::new("/chroot/etc/haproxy/ssl/a.pem"))
                .unwrap()
                .as_deref(),
            Some("ssl/a.pem")
        );
        assert_eq!(
            find_cert(&certs, Path::new("/etc/haproxy/ssl/new.pem")).unwrap(),
            None
        );
        let twice = vec!["/a/x.pem".to_owned(), "/b/x.pem".to_owned()];
        assert!(matches!(
            find_cert(&twice, Path::new("/c/x.pem")),
            Err(Error::Ambiguous { .. })
        ));
    }

    #[test]
    fn names_are_escaped_so_that_no_path_starts_a_command() {
        assert_eq!(
            cli_arg("/x;show info;/ssl/a.pem").unwrap(),
            "/x\\;show\\ info\\;/ssl/a.pem"
        );
        assert_eq!(cli_arg("/a b\\c").unwrap(), "/a\\ b\\\\c");
        assert!(cli_arg("/a\tb").is_err(), "a tab is refused too");
        assert_eq!(
            cli_arg("/etc/haproxy/ssl/a.pem").unwrap(),
            "/etc/haproxy/ssl/a.pem"
        );
        assert!(matches!(
            cli_arg("/x\nshow info"),
            Err(Error::UnsafeName { .. })
        ));
    }

    #[test]
    fn a_reply_that_is_not_a_certificate_list_is_told_apart() {
        assert!(is_cert_list(SHOW_WITH_TRANSACTION));
        assert!(is_cert_list("# transaction\n# filename\n/x.pem\n"));
        // captured from HAProxy 2.6.12 with no transaction open
        assert!(is_cert_list("# filename\n/tmp/lab/placeholder.pem\n\n"));
        assert!(!is_cert_list("Permission denied\n"));
        assert!(!is_cert_list("\u{0}\u{1}garbage"));
        assert!(!is_cert_list(""));
        // HAProxy 2.6 with no certificate loaded (no TLS bind yet)
        assert!(is_cert_list("\n"));
        assert!(!is_cert_list("\n\n\n"));
    }

    #[test]
    fn replies_in_messages_are_printable_and_short() {
        assert_eq!(tidy("a\u{1}b\u{e9}\n c"), "a\\x01b\\xc3\\xa9 c");
        assert_eq!(tidy(&"y".repeat(1000)).len(), SHOWN_REPLY + 3);
    }
}
