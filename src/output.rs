//! What certctl writes on stdout, and how it writes dates for people and for machines.
//! stdout carries results only (tables, JSON, a bundle), every byte through `print_stdout`
//! (results, redacted like messages) or `print_secret` (the bundle `concat --stdout` is
//! asked for); a reader that went away (`| head`) ends the output quietly and the exit code
//! stays the one of the work. Messages go to stderr through `log`.

use std::io::Write;

use anyhow::anyhow;

/// Writes a result at once, with any private key in it redacted (a damaged file quoted in a
/// JSON error field); a reader that went away is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    write_stdout(&crate::redact::redact(text))
}

/// Writes `text` as it is: a bundle the user asked to see on stdout.
pub fn print_secret(text: &str) -> anyhow::Result<()> {
    write_stdout(text)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| anyhow!("writing to stdout: {e}")),
    }
}

/// A time for people: `2026-04-01 00:00 UTC`.
pub fn date(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| ts.to_string())
}

/// A time for machines: RFC 3339, UTC.
pub fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}
