//! certbot's hooks as certctl takes them over: a hook that only copies certbot's files
//! (certctl writes the bundle itself) is dropped from its `&&` chain, the rest is kept as is.

use std::fs;
use std::path::Path;

/// Hook scripts larger than this are not read to look for certbot's paths.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// A hook command as certctl stores it. Parts of an `a && b` chain that read certbot's
/// files (a concatenation script) are dropped: once certctl renews, those files stop
/// changing, so they would put the old certificate back over the new bundle.
pub(super) fn take_hook(
    certbot_dir: &Path,
    kind: &str,
    command: &str,
    taken_over: &mut Vec<String>,
    not_taken_over: &mut Vec<String>,
) -> Option<String> {
    let parts = split_and_chain(command);
    let reads_certbot = |part: &str| reads_certbot_files(certbot_dir, part);
    let (dropped, kept): (Vec<&str>, Vec<&str>) = match &parts {
        Some(parts) => parts.iter().partition(|p| reads_certbot(p)),
        None if reads_certbot(command) => (vec![command], Vec::new()),
        None => (Vec::new(), vec![command]),
    };
    let why = format!(
        "it reads certbot's files under {}, which stop changing once certctl renews, so it \
         would put the old certificate back; certctl writes the bundle itself",
        certbot_dir.display()
    );
    if kept
        .iter()
        .any(|part| script_text(part).contains("privkey.pem"))
    {
        not_taken_over.push(format!(
            "the file name privkey.pem in the {kind} hook: certctl's $RENEWED_LINEAGE holds \
             key.pem, cert.pem, chain.pem and fullchain.pem; use $CERTCTL_KEY (or \
             $CERTCTL_BUNDLE, the whole bundle) instead"
        ));
    }
    if dropped.is_empty() {
        taken_over.push(format!("{kind} hook {command:?}"));
        return Some(command.to_owned());
    }
    if kept.is_empty() {
        not_taken_over.push(format!("{kind} hook {command:?}: {why}"));
        return None;
    }
    let kept = kept.join(" && ");
    taken_over.push(format!("{kind} hook {kept:?}"));
    not_taken_over.push(format!(
        "the part {:?} of the {kind} hook: {why}",
        dropped.join(" && ")
    ));
    Some(kept)
}

/// `a && b && c` split at the `&&`s outside quotes, trimmed; None when the command has
/// `||`, `;`, `|`, `&` alone, a subshell, a backquote or a newline outside quotes, or is a
/// single part (then it is taken whole or not at all).
fn split_and_chain(command: &str) -> Option<Vec<&str>> {
    let bytes = command.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i, mut quote) = (0, 0, None);
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(b'"'), b'`') | (Some(b'"'), b'\\') => return None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'&') if bytes.get(i + 1) == Some(&b'&') => {
                parts.push(command[start..i].trim());
                i += 2;
                start = i;
                continue;
            }
            (None, b'&' | b'|' | b';' | b'(' | b')' | b'`' | b'\n' | b'\\') => return None,
            (None, _) => {}
        }
        i += 1;
    }
    if quote.is_some() {
        return None;
    }
    parts.push(command[start..].trim());
    (parts.len() > 1 && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

/// True when a command, or a script it runs, names certbot's directory.
fn reads_certbot_files(certbot_dir: &Path, command: &str) -> bool {
    let mut needles = vec![certbot_dir.display().to_string()];
    if let Ok(real) = fs::canonicalize(certbot_dir) {
        needles.push(real.display().to_string());
    }
    let text = script_text(command);
    needles.iter().any(|n| text.contains(n.as_str()))
}

/// A command followed by the text of the scripts it runs (each word that is an absolute
/// path to a small file), to look for file names in.
fn script_text(command: &str) -> String {
    let mut text = command.to_owned();
    for word in command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| matches!(c, '"' | '\'' | '&' | '|' | ';')))
        .filter(|w| w.starts_with('/'))
    {
        let path = Path::new(word);
        if path.is_file() && fs::metadata(path).is_ok_and(|m| m.len() <= MAX_SCRIPT_BYTES) {
            if let Ok(bytes) = fs::read(path) {
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_that_copy_certbot_files_are_dropped_from_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let certbot = dir.path().join("letsencrypt");
        fs::create_dir(&certbot).unwrap();
        let script = dir.path().join("concatenates.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat {0}/live/x/fullchain.pem {0}/live/x/privkey.pem > /etc/haproxy/ssl/x.pem\n",
                certbot.display()
            ),
        )
        .unwrap();
        let (mut taken, mut not) = (Vec::new(), Vec::new());
        let hook = format!("{} && systemctl reload haproxy.service", script.display());
        let kept = take_hook(&certbot, "post", &hook, &mut taken, &mut not);
        assert_eq!(kept.as_deref(), Some("systemctl reload haproxy.service"));
        assert_eq!(not.len(), 1, "{not:?}");
        assert!(not[0].contains("concatenates.sh"), "{not:?}");

        let whole = format!("cp {}/live/x/fullchain.pem /tmp/x", certbot.display());
        assert_eq!(
            take_hook(&certbot, "deploy", &whole, &mut taken, &mut not),
            None
        );
        assert_eq!(
            take_hook(
                &certbot,
                "pre",
                "systemctl stop nginx",
                &mut taken,
                &mut not
            )
            .as_deref(),
            Some("systemctl stop nginx")
        );
        assert_eq!(
            split_and_chain("a && '/x y/reload.sh' && \"b && c\""),
            Some(vec!["a", "'/x y/reload.sh'", "\"b && c\""])
        );
        assert_eq!(
            split_and_chain("a && 'b && c'"),
            Some(vec!["a", "'b && c'"])
        );
        assert_eq!(split_and_chain("a&&b"), Some(vec!["a", "b"]));
        for whole in [
            "a || b && c",
            "a; b && c",
            "a | b && c",
            "a & b",
            "a && $(b)",
            "a && 'b",
            "one",
        ] {
            assert_eq!(split_and_chain(whole), None, "{whole}");
        }
    }
}
