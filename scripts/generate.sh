#!/usr/bin/env bash
# Regenerates every committed artefact from the code. Tests fail when these drift.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f crds/*.yaml
cargo run -q --bin ngrok-events-operator -- crd --out-dir crds
