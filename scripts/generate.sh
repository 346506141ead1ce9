#!/usr/bin/env bash
# Regenerates every committed artefact from the code. Tests fail when these drift.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f crds/*.yaml
cargo run -q --bin ngrok-events-operator -- crd --out-dir crds
# The chart carries the same CRDs, rendered by its templates/crds.yaml (so that `helm upgrade`
# upgrades them); deploy/ is the chart rendered with its default values.
rm -f charts/ngrok-events-operator/files/crds/*.yaml
cp crds/*.yaml charts/ngrok-events-operator/files/crds/
scripts/test-chart.sh render-deploy
