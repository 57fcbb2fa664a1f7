//! The error kinds a caller branches on: bad input, which exits with code 2, and a command's
//! own exit code. Everything else is an `anyhow::Error` with context and exits with code 1.

/// Input the user can fix: a bad flag value, name, file or a refused confirmation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// A command that has said everything already and ends with its own exit code (`check`
/// follows the monitoring plugins' 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
#[derive(Debug, thiserror::Error)]
#[error("exit {0}")]
pub struct ExitWith(pub i32);

/// Exit code for an error: a command's own (`ExitWith`), else 2 when any cause in the chain
/// is bad input, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(ExitWith(code)) = err.downcast_ref::<ExitWith>() {
        *code
    } else if err.chain().any(|c| c.is::<BadInput>()) {
        2
    } else {
        1
    }
}
