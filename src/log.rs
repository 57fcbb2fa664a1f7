//! Messages to stderr at the user's chosen verbosity (-q, default, -v, -vv, or CERTCTL_LOG),
//! each passed through `redact` (no message ever shows a private key) and written whole; a
//! closed stderr is not an error. Under systemd (JOURNAL_STREAM set) every line carries its
//! syslog priority (`<3>` error, `<4>` warning, `<6>` information, `<7>` details), so
//! `journalctl -p err` shows the failures alone. stdout is never written here.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// How much is said on stderr: -q, default, -v, -vv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Debug,
}

static LEVEL: AtomicU8 = AtomicU8::new(1);
static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Syslog priorities (RFC 5424) as journald reads them from a line's `<N>` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Error = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

/// Prefix every line with its priority (stderr is connected to the journal).
pub fn set_journal(on: bool) {
    JOURNAL.store(on, Ordering::Relaxed);
}

/// Whether stderr goes to the journal: systemd sets JOURNAL_STREAM for a service whose
/// stderr it connected there.
pub fn journal_from_env() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty())
}

/// Writes `text` to stderr, redacted, each line with `priority`'s prefix when under the
/// journal, in one write; a closed stderr (cron with 2>&-) must not stop the work.
pub fn emit(priority: Priority, text: &str) {
    let text = crate::redact::redact(text);
    let journal = JOURNAL.load(Ordering::Relaxed);
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        if journal {
            out.push_str(&format!("<{}>", priority as u8));
        }
        out.push_str(line);
        out.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// An error: always shown, `certctl: ` first.
pub fn error(args: std::fmt::Arguments<'_>) {
    emit(Priority::Error, &format!("certctl: {args}"));
}

pub fn set(verbosity: Verbosity) {
    LEVEL.store(verbosity as u8, Ordering::Relaxed);
}

fn enabled(v: Verbosity) -> bool {
    LEVEL.load(Ordering::Relaxed) >= v as u8
}

/// The level named by CERTCTL_LOG, which applies when neither -v nor -q is given: `quiet`
/// or `error` (like -q), `info` (the default), `verbose` or `debug` (like -v), `trace`
/// (like -vv). A tracing-style `certctl=LEVEL` directive is read the same way.
pub fn parse_level(raw: &str) -> Result<Verbosity, String> {
    let level = raw.trim();
    let level = level.strip_prefix("certctl=").unwrap_or(level);
    match level.to_ascii_lowercase().as_str() {
        "quiet" | "error" => Ok(Verbosity::Quiet),
        "info" => Ok(Verbosity::Normal),
        "verbose" | "debug" => Ok(Verbosity::Verbose),
        "trace" => Ok(Verbosity::Debug),
        _ => Err(format!(
            "CERTCTL_LOG={raw:?} is not a level; use quiet (or error), info, verbose (or debug) or trace"
        )),
    }
}

/// A line for a person watching: progress and outcomes. Hidden by -q.
pub fn info(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Normal) {
        emit(Priority::Info, &args.to_string());
    }
}

/// Details shown with -v.
pub fn verbose(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Verbose) {
        emit(Priority::Debug, &args.to_string());
    }
}

/// Protocol-level details shown with -vv.
pub fn debug(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Debug) {
        emit(Priority::Debug, &args.to_string());
    }
}

/// A problem that does not stop the command; shown unless -q.
pub fn warn(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Normal) {
        emit(Priority::Warning, &format!("certctl: warning: {args}"));
    }
}

/// Text for the person at the terminal (what a question is about); always shown.
pub fn say(args: std::fmt::Arguments<'_>) {
    emit(Priority::Info, &args.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certctl_log_names_the_levels_of_q_and_v() {
        assert_eq!(parse_level("quiet"), Ok(Verbosity::Quiet));
        assert_eq!(parse_level("ERROR"), Ok(Verbosity::Quiet));
        assert_eq!(parse_level("info"), Ok(Verbosity::Normal));
        assert_eq!(parse_level(" debug "), Ok(Verbosity::Verbose));
        assert_eq!(parse_level("certctl=trace"), Ok(Verbosity::Debug));
        for bad in ["", "loud", "warn", "hyper=debug", "2"] {
            let err = parse_level(bad).unwrap_err();
            assert!(err.contains("CERTCTL_LOG"), "{err}");
        }
    }
}
