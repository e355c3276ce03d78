#!/usr/bin/env bash
# Installs what the tests need (apt-get) and runs every test. Run as root (CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads=2
