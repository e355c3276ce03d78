#!/usr/bin/env bash
# Installs what the tests need (apt-get), checks formatting and lints (rustfmt, clippy with
# -D warnings) and runs every test. Run as root (CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# One build from scratch: an incremental cache would only take disk (it was half of a target dir).
export CARGO_INCREMENTAL=0
cargo fmt --all --check
cargo build --workspace --all-targets --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --test-threads=2
