//! What no message may show: private keys. Every line certctl writes to stderr, every
//! result on stdout (but a bundle asked for with `concat --stdout`) and every line a hook
//! writes passes through here, so an echoing proxy, a chatty hook or a damaged file quoted in
//! an error cannot leak a key. Two shapes are caught: PEM blocks whose label names a private
//! key (complete, or cut short), and runs of base64 (or base64url) that decode to the DER of
//! a private key (PKCS#8, SEC1 or PKCS#1), whitespace between their lines included.
//! Pure functions over text; `Stream` carries the state across the lines of a stream.

use std::borrow::Cow;

use base64::Engine;

/// What stands in for a key.
pub const REDACTED: &str = "[private key redacted]";

/// Fewest base64 characters a run must have to be looked at: enough to decode the start of
/// a key's DER (a key is hundreds; a line of one, as a stream brings it, is 64).
const MIN_RUN: usize = 16;

/// `text` with every private key it holds replaced by `REDACTED`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let (out, _) = redact_open(text);
    out
}

/// What a text ended inside of: a key that may go on in the next line of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Open {
    #[default]
    Nothing,
    /// A PEM private key block whose END line has not come yet.
    PemKey,
    /// A base64 run that decodes to a key, reaching the end of the text.
    Base64Key,
}

fn redact_open(text: &str) -> (Cow<'_, str>, Open) {
    if !might_hold_a_key(text) {
        return (Cow::Borrowed(text), Open::Nothing);
    }
    let (text, open) = redact_pem(text);
    if open == Open::PemKey {
        return (Cow::Owned(text), open);
    }
    let (text, open) = redact_base64(&text);
    (Cow::Owned(text), open)
}

/// A cheap test that lets most messages through untouched.
fn might_hold_a_key(text: &str) -> bool {
    text.contains("PRIVATE KEY") || text.len() >= MIN_RUN
}

/// Replaces each `-----BEGIN ...PRIVATE KEY-----` block (to its END line, or to the end of
/// the text when it is cut short).
fn redact_pem(text: &str) -> (String, Open) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let header_end = rest[begin + 11..].find("-----").map(|i| begin + 11 + i + 5);
        let is_key = header_end.is_some_and(|end| rest[begin..end].contains("PRIVATE KEY"))
            || header_end.is_none() && rest[begin..].contains("PRIVATE");
        if !is_key {
            let next = header_end.unwrap_or(rest.len());
            out.push_str(&rest[..next]);
            rest = &rest[next..];
            continue;
        }
        out.push_str(&rest[..begin]);
        out.push_str(REDACTED);
        let after = &rest[header_end.unwrap_or(rest.len())..];
        match find_pem_key_end(after) {
            Some(end) => rest = &after[end..],
            None => return (out, Open::PemKey),
        }
    }
    out.push_str(rest);
    (out, Open::Nothing)
}

/// Where the text after a key's END line starts, if that line is in `text`.
fn find_pem_key_end(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("-----END ") {
        let start = from + i;
        let close = text[start + 9..].find("-----")? + start + 9;
        if text[start..close].contains("PRIVATE KEY") {
            return Some(close + 5);
        }
        from = close + 5;
    }
    None
}

fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=')
}

/// Replaces each run of base64 (its lines joined by whitespace or a written `\n`) that
/// decodes to a private key.
fn redact_base64(text: &str) -> (String, Open) {
    let mut out = String::with_capacity(text.len());
    let mut open = Open::Nothing;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        if !is_base64_char(c) {
            // up to the next base64 character, copied at once
            let next = run_of(text, i, |c| !is_base64_char(c));
            out.push_str(&text[i..next]);
            i = next;
            continue;
        }
        let token_end = run_of(text, i, is_base64_char);
        if token_end - i < MIN_RUN {
            out.push_str(&text[i..token_end]);
            i = token_end;
            continue;
        }
        // the run: this token, and the base64 lines that follow it after a line break
        let mut end = token_end;
        let mut digits: String = text[i..token_end].to_owned();
        loop {
            let gap = gap_after(bytes, end);
            if gap == 0 {
                break;
            }
            let next_end = run_of(text, end + gap, is_base64_char);
            if next_end - (end + gap) < 4 {
                break;
            }
            digits.push_str(&text[end + gap..next_end]);
            end = next_end;
        }
        if digits.len() >= MIN_RUN && decodes_to_key(&digits) {
            out.push_str(REDACTED);
            open = if end == text.len() || text[end..].trim().is_empty() {
                Open::Base64Key
            } else {
                Open::Nothing
            };
        } else {
            out.push_str(&text[i..end]);
            open = Open::Nothing;
        }
        i = end;
    }
    (out, open)
}

/// The end of the run of characters matching `f` from `start`.
fn run_of(text: &str, start: usize, f: fn(char) -> bool) -> usize {
    text[start..]
        .char_indices()
        .find(|(_, c)| !f(*c))
        .map_or(text.len(), |(j, _)| start + j)
}

/// The length of a line break between two base64 lines at `at`: whitespace holding a
/// newline, or a written `\n` (as a line break looks in quoted text); 0 when there is none.
fn gap_after(bytes: &[u8], at: usize) -> usize {
    let mut j = at;
    let mut broke = false;
    while j < bytes.len() {
        match bytes[j] {
            b'\n' => {
                broke = true;
                j += 1;
            }
            b' ' | b'\t' | b'\r' => j += 1,
            b'\\' if bytes.get(j + 1) == Some(&b'n') => {
                broke = true;
                j += 2;
            }
            _ => break,
        }
    }
    if broke { j - at } else { 0 }
}

/// Whether base64 (or base64url) `digits` start with the DER of a private key: a SEQUENCE
/// whose first element is the INTEGER 0 or 1 (PKCS#8, PKCS#1, SEC1). A certificate starts
/// with a SEQUENCE inside a SEQUENCE and is let through.
fn decodes_to_key(digits: &str) -> bool {
    let head: String = digits
        .chars()
        .filter(|c| *c != '=')
        .take(16)
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let Ok(der) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(head.as_bytes()) else {
        return false;
    };
    let after_length = match der.as_slice() {
        [0x30, 0x81, _, rest @ ..] => rest,
        [0x30, 0x82, _, _, rest @ ..] => rest,
        [0x30, len, rest @ ..] if *len < 0x80 => rest,
        _ => return false,
    };
    matches!(after_length, [0x02, 0x01, 0x00 | 0x01, ..])
}

/// The redaction of a stream (a hook's output), line by line: a key that spans lines is
/// dropped whole, whatever the reads that bring it.
#[derive(Debug, Default)]
pub struct Stream {
    pending: Vec<u8>,
    open: Open,
}

/// A line longer than this is passed on in pieces.
const MAX_LINE: usize = 64 * 1024;

impl Stream {
    /// Takes the next bytes; returns what may be shown of the complete lines among them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=at).collect();
            self.line(&line, &mut out);
        }
        if self.pending.len() > MAX_LINE {
            let piece = std::mem::take(&mut self.pending);
            self.line(&piece, &mut out);
        }
        out
    }

    /// What is left once the stream has ended.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.line(&rest, &mut out);
        }
        out
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(raw);
        let text: &str = &text;
        let rest = match self.open {
            Open::PemKey => match find_pem_key_end(text) {
                Some(end) => {
                    self.open = Open::Nothing;
                    &text[end..]
                }
                None => return,
            },
            Open::Base64Key => {
                // the key's next line (base64 alone on its line), or what follows it
                let trimmed = text.trim();
                if !trimmed.is_empty() && trimmed.chars().all(is_base64_char) {
                    return;
                }
                self.open = Open::Nothing;
                text
            }
            Open::Nothing => text,
        };
        let (shown, open) = redact_open(rest);
        self.open = open;
        out.extend_from_slice(shown.as_bytes());
        if open != Open::Nothing && raw.ends_with(b"\n") && !shown.ends_with('\n') {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pem() -> String {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    }

    fn cert_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["a.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    fn body(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn a_pem_key_is_redacted_whole_or_cut_short_and_a_certificate_is_kept() {
        let key = key_pem();
        let cert = cert_pem();
        let text = format!("HAProxy refused: {cert}{key}Transaction created\n");
        let shown = redact(&text);
        assert!(!shown.contains(&body(&key)[..40]), "{shown}");
        assert!(shown.contains(REDACTED) && shown.contains("Transaction created"));
        assert!(shown.contains(&cert), "a certificate is not a secret");
        // cut in the middle of the key, and on one line as a tidied reply shows it
        let cut = &text[..text.len() - 80];
        assert!(!redact(cut).contains(&body(&key)[..40]));
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown = redact(&one_line);
        assert!(!shown.contains(&body(&key)[..40]), "{shown}");
        for label in ["EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
            let other = key.replace("PRIVATE KEY", label);
            assert!(!redact(&other).contains(&body(&key)[..40]), "{label}");
        }
    }

    #[test]
    fn base64_key_bytes_without_a_pem_header_are_redacted() {
        let key = key_pem();
        let der = pem::parse(&key).unwrap().into_contents();
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        // a damaged account file quoted in an error, a JSON string of PKCS#8
        let text = format!("invalid type: string \"{url}\", expected a map");
        let shown = redact(&text);
        assert!(!shown.contains(&url[..30]), "{shown}");
        assert!(shown.contains("expected a map"), "{shown}");
        // the lines of a PEM body without its header, as `\n`-escaped JSON would hold them
        let lines: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
        let escaped = format!("\"{}\"", lines.join("\\n"));
        let shown = redact(&escaped);
        assert!(
            lines.iter().all(|l| l.len() < 16 || !shown.contains(l)),
            "{shown}"
        );
        // ordinary text and a certificate's base64 pass
        let cert = body(&cert_pem());
        assert_eq!(redact(&cert), cert);
        let plain =
            "the CA refused: Error creating new order :: too many certificates already issued";
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn a_stream_drops_a_key_whatever_the_reads() {
        let key = key_pem();
        let text = format!("deploying\n{key}done\n");
        for size in [1, 7, 64, 4096] {
            let mut stream = Stream::default();
            let mut out = Vec::new();
            for chunk in text.as_bytes().chunks(size) {
                out.extend(stream.push(chunk));
            }
            out.extend(stream.finish());
            let shown = String::from_utf8(out).unwrap();
            assert!(shown.starts_with("deploying\n"), "{size}: {shown}");
            assert!(shown.ends_with("done\n"), "{size}: {shown}");
            assert!(shown.contains(REDACTED), "{size}: {shown}");
            assert!(!shown.contains(&body(&key)[..40]), "{size}: {shown}");
        }
        // the body of a key printed without its header, one line after another
        let der = pem::parse(&key).unwrap().into_contents();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(20)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let mut stream = Stream::default();
        let mut out = stream.push(format!("{}\nafter it\n", wrapped.join("\n")).as_bytes());
        out.extend(stream.finish());
        let shown = String::from_utf8(out).unwrap();
        assert_eq!(shown, format!("{REDACTED}\nafter it\n"));
    }
}
