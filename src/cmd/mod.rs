//! One module per subcommand; each reads top to bottom as the steps it takes.

pub mod account;
pub mod ca;
pub mod concat;
pub mod delete;
pub mod import;
pub mod list;
pub mod renew;
pub mod request;
pub mod revoke;
