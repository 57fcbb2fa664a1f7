//! One module per subcommand; each reads top to bottom as the steps it takes.

pub mod request;
