//! The one error kind a caller branches on: bad input, which exits with code 2.
//! Everything else is an `anyhow::Error` with context and exits with code 1.

/// Input the user can fix: a bad flag value, name, file or a refused confirmation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Exit code for an error: 2 when any cause in the chain is bad input, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|c| c.is::<BadInput>()) {
        2
    } else {
        1
    }
}
