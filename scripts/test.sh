#!/usr/bin/env bash
# Runs certctl's checks the way CI does: formatting, clippy, then every test.
# The integration tests drive real Pebble, HAProxy and certbot on loopback, so those are
# installed first (Debian/Ubuntu: apt-get install pebble haproxy openssl certbot).
# Works from any directory and with no stdin (CI runs `bash .ci/run < /dev/null`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian puts haproxy in /usr/sbin, which is not on a normal user's PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH

heading() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_tools: install the Debian packages behind any missing command.
ensure_tools() {
    local -a missing=() pkgs=()
    local cmd
    for cmd in pebble pebble-challtestsrv haproxy; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [[ ${#missing[@]} -eq 0 ]] || pkgs+=(pebble haproxy)
    if ! command -v openssl >/dev/null 2>&1; then
        missing+=(openssl)
        pkgs+=(openssl)
    fi
    # tests/import.rs migrates what a real certbot issued from the lab's Pebble
    if ! command -v certbot >/dev/null 2>&1; then
        missing+=(certbot)
        pkgs+=(certbot)
    fi
    [[ ${#missing[@]} -eq 0 ]] && return 0

    heading "missing ${missing[*]}: installing ${pkgs[*]} with apt-get"
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${missing[*]}; the tests need real Pebble, HAProxy and certbot.
Install them, then run this script again:
    sudo apt-get update && sudo apt-get install -y ${pkgs[*]}
(Debian 12 / Ubuntu packages; 'pebble' provides pebble and pebble-challtestsrv)"
    fi
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade "${pkgs[@]}"; } </dev/null; then
        die "apt-get could not install ${pkgs[*]}; install them by hand:
    apt-get update && apt-get install -y ${pkgs[*]}"
    fi
    for cmd in "${missing[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after installing ${pkgs[*]}"
    done
}

heading "checking tools"
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust from https://rustup.rs (then: rustup component add rustfmt clippy)"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt not found; run: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy not found; run: rustup component add clippy"
ensure_tools
printf '%s\n' "$(cargo --version)" "$(haproxy -v | head -n 1)" "pebble: $(command -v pebble)" \
    "$(openssl version)" "$(certbot --version 2>&1)"

heading "cargo fmt --all --check"
cargo fmt --all --check

heading "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

heading "cargo test --locked --all-targets"
cargo test --locked --all-targets

# The property tests (tests/properties.rs) and the fuzz checks over the seed corpus and
# every crash found (tests/fuzz_seeds.rs) ran above; now the fuzzers themselves, briefly
# (scripts/fuzz runs them longer). CERTCTL_FUZZ_SECONDS=0 skips this step.
fuzz_seconds=${CERTCTL_FUZZ_SECONDS:-20}
if [[ $fuzz_seconds != 0 ]]; then
    heading "fuzz targets, ${fuzz_seconds}s each: scripts/fuzz $fuzz_seconds"
    scripts/fuzz "$fuzz_seconds"
fi

heading "all checks passed"
