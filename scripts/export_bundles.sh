#!/usr/bin/env bash
# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
# Export all 12 MONAI bundles (segmentation, autoencoder, registration x JSRT, MONT, SHEN, universal) into dist/ (git-ignored),
# each checked with verify_metadata (offline schema), verify_net_in_out and ckpt_export (models/model.ts),
# and write dist/SHA256SUMS. Usage: scripts/export_bundles.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
mkdir -p "$out"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
for kind in segmentation autoencoder registration; do
    for ds in JSRT MONT SHEN universal; do
        cxreg export --bundle "$kind" --dataset "$ds" --out "$out" --overwrite
    done
done
(cd "$out" && sha256sum ./*.zip > SHA256SUMS)
echo "wrote $(ls "$out"/*.zip | wc -l) bundles and $out/SHA256SUMS"
