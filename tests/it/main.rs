//! certctl's integration tests, one binary (`cargo test --test it`): each module drives the
//! built `certctl` (or the library) against the lab in `common/` (Pebble, HAProxy, certbot
//! on free loopback ports). Filter by module: `cargo test --test it renew::`.
//! Every certctl run goes through `common::hermetic`: nothing of the host's configuration
//! (its /etc/certctl/config.toml, CERTCTL_*, CA bundle or proxy variables) reaches a test.

mod common;

mod admin;
mod admin_session;
mod ari;
mod bad_input;
mod check;
mod cluster;
mod cluster_locks;
mod config;
mod dns01;
mod dns01_hooks;
mod docs;
mod faults;
mod fuzz_seeds;
mod haproxy;
mod hostile;
mod hostile_ca;
mod hostile_proxy;
mod hostile_runs;
mod import;
mod ip_address;
mod json;
mod lab_selftest;
mod lifecycle;
mod list_cache;
mod local_ca;
mod modern_acme;
mod progress;
mod properties;
mod renew;
mod renew_index;
mod request;
mod secrets;
mod short_lived;
mod tls_alpn;
