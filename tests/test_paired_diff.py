"""scripts/paired_diff.py on two small hand-made pairs.csv files with known differences."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _row(d: Path, hd: list[float]) -> None:
    d.mkdir(parents=True)
    pairs = [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")]
    lines = ["moving,fixed,dsc,hd,assd,jac"] + [f"{m},{f},0.9,{h},1.0,0" for (m, f), h in zip(pairs, hd)]
    (d / "pairs.csv").write_text("\n".join(lines) + "\n")


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "paired_diff.py"), *args], cwd=cwd,
                          capture_output=True, text=True)


def test_paired_difference_counts_and_target(tmp_path):
    _row(tmp_path / "X_A", [10, 10, 10, 10])
    _row(tmp_path / "X_B", [9, 9, 12, 10])  # two better, one worse, one equal; mean 10.0 -> 10.0
    r = _run("X", "A", "B", "--dir", str(tmp_path), "--metrics", "hd", "--target", "hd=10.5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[1]
    assert "A 10.0000  B 10.0000  B-A +0.0000" in line
    assert "B better on 2, worse on 1" in line
    assert "target 10.5: mean meets it" in line


def test_rows_with_different_pairs_stop_with_one_line(tmp_path):
    _row(tmp_path / "X_A", [10, 10, 10, 10])
    d = tmp_path / "X_B"
    d.mkdir()
    (d / "pairs.csv").write_text("moving,fixed,dsc,hd,assd,jac\na,b,0.9,9,1,0\n")
    r = _run("X", "A", "B", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().startswith("paired_diff: error: the two rows do not hold")
