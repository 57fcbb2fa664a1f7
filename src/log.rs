//! Messages to stderr at the user's chosen verbosity (-q, default, -v, -vv, or CERTCTL_LOG),
//! each passed through `redact` (no message ever shows a private key) and written whole; a
//! closed stderr is not an error. stdout is never written here: it carries results only.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// How much is said on stderr: -q, default, -v, -vv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
    Debug,
}

static LEVEL: AtomicU8 = AtomicU8::new(1);

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

/// Writes one message to stderr: redacted, with its line end, in one write.
fn emit(text: &str) {
    let mut line = crate::redact::redact(text).into_owned();
    line.push('\n');
    // a closed stderr (cron with 2>&-) must not stop the work
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A line for a person watching: progress and outcomes. Hidden by -q.
pub fn info(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Normal) {
        emit(&args.to_string());
    }
}

/// Details shown with -v.
pub fn verbose(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Verbose) {
        emit(&args.to_string());
    }
}

/// Protocol-level details shown with -vv.
pub fn debug(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Debug) {
        emit(&args.to_string());
    }
}

/// A problem that does not stop the command; shown unless -q.
pub fn warn(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Normal) {
        emit(&format!("certctl: warning: {args}"));
    }
}

/// An error, after `certctl: `; always shown, -q included.
pub fn error(args: std::fmt::Arguments<'_>) {
    emit(&format!("certctl: {args}"));
}

/// Text for the person at the terminal (what a question is about); always shown.
pub fn say(args: std::fmt::Arguments<'_>) {
    emit(&args.to_string());
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
