//! certctl's integration tests, one binary (`cargo test --test it`): each module drives the
//! built `certctl` (or the library) against the lab in `common/` (Pebble, HAProxy, certbot
//! on free loopback ports). Filter by module: `cargo test --test it renew::`.

mod common;

mod ari;
mod bad_input;
mod config;
mod docs;
mod faults;
mod fuzz_seeds;
mod haproxy;
mod import;
mod json;
mod lab_selftest;
mod lifecycle;
mod local_ca;
mod progress;
mod properties;
mod renew;
mod request;
mod secrets;
