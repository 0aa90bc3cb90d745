#!/usr/bin/env bash
# Regenerate the measured table in docs/results.md from docs/results/*/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import re, subprocess
table = subprocess.run(["python", "scripts/results_table.py", "--methods", "identity", "elastix", "syn", "registration/acregnet", "registration/paper", "registration/shipped_ff", "registration/shipped_refine20_ff", "registration/universal_df1", "registration/universal_df1_ens", "registration/universal_df1_ens_refine20_ff", "registration/universal_df1_segDS256", "registration/universal_df1_segDS256_refine20_mw3", "registration/universal_df1_segDS256tta_refine20_mw80", "registration/universal_df1_segens256tta_refine20_mw80", "registration/universal_df1_segens256tta_refine20_mw80_all", "registration/universal_df1_segens4_256tta_refine20_mw80", "registration/universal_df1_segens4_256tta_refine20_mw80_all"],
                       capture_output=True, text=True, check=True).stdout
doc = open("docs/results.md").read()
doc = re.sub(r"<!-- table -->.*<!-- /table -->", "<!-- table -->\n" + table + "<!-- /table -->", doc, flags=re.S)
open("docs/results.md", "w").write(doc)
PY
