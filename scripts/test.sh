#!/usr/bin/env bash
# Runs certctl's checks the way CI does: formatting, clippy, then every test, then the
# Debian package (scripts/test-package: it installs, removes and purges it on this machine).
# The integration tests drive real Pebble, HAProxy, certbot and BIND on loopback, so those
# are installed first (Debian/Ubuntu: apt-get install pebble haproxy openssl certbot bind9
# bind9-utils bind9-dnsutils python3-certbot-dns-rfc2136 faketime prometheus etcd-server
# etcd-client protobuf-compiler; faketime moves the clock for `check`, prometheus brings
# promtool, etcd the cluster tests, protoc builds the etcd client).
# Works from any directory and with no stdin (CI runs `bash .ci/run < /dev/null`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# heading, die and lab_ensure_tools (apt-get installs what is missing, or says how to);
# it also puts /usr/sbin (haproxy) on PATH
# shellcheck source=scripts/lib/lab.sh
source scripts/lib/lab.sh

heading "checking tools"
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust from https://rustup.rs (then: rustup component add rustfmt clippy)"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt not found; run: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy not found; run: rustup component add clippy"
lab_ensure_tools pebble haproxy openssl certbot bind9 bind9-utils bind9-dnsutils \
    python3-certbot-dns-rfc2136 faketime prometheus etcd-server etcd-client protobuf-compiler
printf '%s\n' "$(cargo --version)" "$(haproxy -v | head -n 1)" "pebble: $(command -v pebble)" \
    "$(openssl version)" "$(certbot --version 2>&1)" "$(named -v)"

heading "cargo fmt --all --check"
cargo fmt --all --check

heading "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

heading "cargo test --locked --all-targets"
cargo test --locked --all-targets

# The Debian package: built (release), checked with dpkg-deb and lintian, installed on this
# machine, removed and purged; it leaves the machine as it found it.
heading "the Debian package: scripts/test-package"
scripts/test-package

# The property tests (tests/it/properties.rs) and the fuzz checks over the seed corpus and
# every crash found (tests/it/fuzz_seeds.rs) ran above; now the fuzzers themselves, briefly
# (scripts/fuzz runs them longer). CERTCTL_FUZZ_SECONDS=0 skips this step.
fuzz_seconds=${CERTCTL_FUZZ_SECONDS:-20}
if [[ $fuzz_seconds != 0 ]]; then
    heading "fuzz targets, ${fuzz_seconds}s each: scripts/fuzz $fuzz_seconds"
    scripts/fuzz "$fuzz_seconds"
fi

heading "all checks passed"
