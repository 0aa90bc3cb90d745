"""scripts/pair_breakdown.py on a hand-made pairs.csv with known means."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_split_means_and_worst_image(tmp_path):
    rows = [("a", "b", 0.90, 20), ("b", "a", 0.92, 18), ("b", "c", 0.98, 4), ("c", "b", 0.96, 6)]
    lines = ["moving,fixed,dsc,hd,assd,jac"] + [f"{m},{f},{d},{h},1.0,0" for m, f, d, h in rows]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "pair_breakdown.py"), str(tmp_path), "a",
                        "--worst", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "| all | 4 | 0.9400 | 12.00 | 1.000 | 0.00 |" in out
    assert "| with one of the 1 images | 2 | 0.9100 | 19.00 |" in out
    assert "| without them | 2 | 0.9700 | 5.00 |" in out
    assert "  a: 0.9100 (2 pairs)" in out  # a is in the two worst pairs
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "pair_breakdown.py"), str(tmp_path / "none")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "pairs.csv: not found" in bad.stderr.strip().splitlines()[-1]
    neg = subprocess.run([sys.executable, str(ROOT / "scripts" / "pair_breakdown.py"), str(tmp_path), "--worst", "-1"],
                         capture_output=True, text=True)
    assert neg.returncode == 2 and "expected a whole number >= 1, not -1" in neg.stderr.strip().splitlines()[-1]
