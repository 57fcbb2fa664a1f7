//! Messages to stderr at the user's chosen verbosity (-q, default, -v, -vv).
//! stdout is never written here: it carries results only.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::settings::Verbosity;

static LEVEL: AtomicU8 = AtomicU8::new(1);

pub fn set(verbosity: Verbosity) {
    LEVEL.store(verbosity as u8, Ordering::Relaxed);
}

fn enabled(v: Verbosity) -> bool {
    LEVEL.load(Ordering::Relaxed) >= v as u8
}

/// A line for a person watching: progress and outcomes. Hidden by -q.
pub fn info(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Normal) {
        eprintln!("{args}");
    }
}

/// Details shown with -v.
pub fn verbose(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Verbose) {
        eprintln!("{args}");
    }
}

/// Protocol-level details shown with -vv.
pub fn debug(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Debug) {
        eprintln!("{args}");
    }
}

/// A problem that does not stop the command; shown unless -q.
pub fn warn(args: std::fmt::Arguments<'_>) {
    if enabled(Verbosity::Normal) {
        eprintln!("certctl: warning: {args}");
    }
}
