//! certctl as a library: the modules behind the `certctl` binary, public so that the
//! benchmarks, fuzz targets and docs generator reach the same parsers and decisions the
//! binary uses. The binary (main.rs) is only the switchboard.

pub mod acme;
pub mod certbot;
pub mod challenge;
pub mod cli;
pub mod cmd;
pub mod deploy;
pub mod durable;
pub mod error;
pub mod health;
pub mod hooks;
pub mod issue;
pub mod keys;
pub mod local_ca;
pub mod log;
pub mod metrics;
pub mod output;
pub mod pem;
pub mod progress;
pub mod prompt;
pub mod redact;
pub mod settings;
pub mod stat;
pub mod store;
pub mod trust;
pub mod types;
