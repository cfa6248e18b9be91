#!/usr/bin/env bash
# Runs Weir's whole test suite. On a fresh machine with Rust (rustup) and Python it first
# installs what the suite needs (scripts/setup.sh): the wasm32-wasip2 target and Envoy.
# The plugins in plugins/ and the test fixtures are compiled to WebAssembly by the weir
# crate's build script; there is no manual step. After the unit, integration and
# end-to-end tests, the Gateway API conformance suite (HTTP profile) runs against a real
# Envoy; it exits non-zero when a core test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked "$@"
cargo run -q -p weir-conformance --locked -- --report target/conformance-report.yaml
