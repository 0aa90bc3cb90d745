"""scripts/select_cv.py on small hand-made pairs.csv files whose cross-validated choice is known."""
import itertools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ["a", "b", "c", "d", "e", "f"]
PAIRS = list(itertools.permutations(IMAGES, 2))


def _row(d: Path, hd) -> None:
    """``hd(moving, fixed)`` gives each pair's HD."""
    d.mkdir(parents=True)
    lines = ["moving,fixed,dsc,hd,assd,jac"] + [f"{m},{f},0.9,{hd(m, f)},1.0,0" for m, f in PAIRS]
    (d / "pairs.csv").write_text("\n".join(lines) + "\n")


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "select_cv.py"), *args], cwd=cwd,
                          capture_output=True, text=True)


def test_a_row_better_everywhere_is_always_chosen(tmp_path):
    _row(tmp_path / "X_A", lambda m, f: 10)
    _row(tmp_path / "X_B", lambda m, f: 9)
    r = _run("X", "A", "B", "--dir", str(tmp_path), "--splits", "5", "--target", "9.5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "cross-validated: 9.0000" in out
    assert "B: 9.0000 on the same scoring pairs; chosen 10 of 10" in out
    assert "A: 10.0000 on the same scoring pairs; chosen 0 of 10" in out
    assert "target 9.5: cross-validated mean meets it; met in 5 of 5 halvings" in out


def test_exclude_drops_every_pair_of_an_image(tmp_path):
    # B is worse only on pairs involving image "a": without "a" it wins; with it, the mean favours A
    _row(tmp_path / "X_A", lambda m, f: 10)
    _row(tmp_path / "X_B", lambda m, f: 30 if "a" in (m, f) else 9)
    r = _run("X", "A", "B", "--dir", str(tmp_path), "--exclude", "a", "--splits", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "X: 20 pairs, 5 images (1 excluded)" in r.stdout
    assert "hd 9.0000" in r.stdout.splitlines()[2]
    assert "cross-validated: 9.0000" in r.stdout
    full = _run("X", "A", "B", "--dir", str(tmp_path), "--splits", "3", cwd=tmp_path).stdout
    assert "hd 16.0000" in full.splitlines()[2]  # (10 pairs x 30 + 20 x 9) / 30


def test_bad_rows_stop_with_one_line(tmp_path):
    _row(tmp_path / "X_A", lambda m, f: 10)
    r = _run("X", "A", "B", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().endswith("X_B/pairs.csv: no such file")
    d = tmp_path / "X_C"
    d.mkdir()
    (d / "pairs.csv").write_text("moving,fixed,dsc,hd,assd,jac\na,b,0.9,9,1,0\n")
    r = _run("X", "A", "C", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and "the rows do not hold the same pairs" in r.stderr
    r = _run("X", "A", "--exclude", "zz", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and "not in the rows: ['zz']" in r.stderr
