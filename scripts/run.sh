#!/usr/bin/env bash
# The main job: builds nodepool and runs it on the example embedded configuration.
# (For now this validates and summarises the configuration; the store, launcher and builder
# issues turn it into the whole system on one machine.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/nodepool-target}"
cargo build --release -p nodepool
"$CARGO_TARGET_DIR/release/nodepool" -c "${NODEPOOL_CONFIG:-examples/nodepool.yaml}" config-validate
