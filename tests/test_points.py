# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""cxreg points: landmarks mapped with a saved ddf.nii.gz, checked against fields whose maps are known exactly."""

import csv

import numpy as np
import pytest

from bundle.cli import main
from bundle.io import write_nifti
from bundle.points import map_points

ID = (np.zeros(2), np.ones(2), np.eye(2))


def _smooth_field(h=48, w=40, amp=3.0):
    """A smooth, fold-free pull-back field (max |grad u| ~ 0.4 < 1), physical (x, y) on a unit grid."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([amp * np.sin(2 * np.pi * r / h), amp * np.cos(2 * np.pi * c / w) + 0.5 * amp], -1)


def test_zero_field_maps_every_point_onto_itself_both_ways():
    pts = np.array([[0.0, 0.0], [3.25, 7.5], [39.0, 47.0]])
    for way in ("fixed", "moving"):
        m, inside, res = map_points(pts, np.zeros((48, 40, 2)), ID, way)
        np.testing.assert_allclose(m, pts, atol=1e-12)
        assert inside.all() and res.max() < 1e-9


def test_a_translation_moves_points_by_exactly_its_vector_and_back():
    t = np.array([2.5, -4.0])  # fixed p -> moving p + t
    u = np.broadcast_to(t, (48, 40, 2)).copy()
    pts = np.array([[5.0, 6.0], [20.3, 30.7]])
    np.testing.assert_allclose(map_points(pts, u, ID, "fixed")[0], pts + t, atol=1e-12)
    np.testing.assert_allclose(map_points(pts, u, ID, "moving")[0], pts - t, atol=1e-9)


def test_the_inverse_of_a_smooth_field_round_trips_and_follows_the_geometry():
    u = _smooth_field()
    rng = np.random.default_rng(0)
    q = rng.uniform([6, 6], [34, 42], size=(50, 2))
    p, inside, res = map_points(q, u, ID, "moving")
    assert inside.all() and res.max() < 1e-6
    back = map_points(p, u, ID, "fixed")[0]  # p + u(p) must be q again
    np.testing.assert_allclose(back, q, atol=1e-6)
    # the same field on a grid with spacing, origin and a flipped, rotated direction: the same map in physical space
    s, o = np.array([0.5, 0.25]), np.array([-10.0, 4.0])
    d = np.array([[0.0, -1.0], [1.0, 0.0]])
    geo = (o, s, d)
    a = d * s[None, :]
    q_phys = o + q @ a.T  # the index points above, in this grid's physical space
    u_phys = u @ a.T      # the displacements, as physical vectors
    p_phys = map_points(q_phys, u_phys, geo, "moving")[0]
    np.testing.assert_allclose(p_phys, o + p @ a.T, atol=1e-6)


def test_points_outside_the_grid_are_flagged_and_the_field_extends_from_its_border():
    t = np.array([1.0, 2.0])
    u = np.broadcast_to(t, (10, 10, 2)).copy()
    m, inside, _ = map_points(np.array([[-5.0, 3.0], [4.0, 4.0]]), u, ID, "fixed")
    np.testing.assert_allclose(m, [[-4.0, 5.0], [5.0, 6.0]])
    assert inside.tolist() == [False, True]


def _write_csv(path, rows, header=("name", "x", "y")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_cli_maps_a_csv_with_a_saved_field_and_keeps_its_columns(tmp_path, capsys):
    u = _smooth_field()
    write_nifti(tmp_path / "ddf.nii.gz", u.astype(np.float32), vector=True)
    _write_csv(tmp_path / "pts.csv", [["apex", 12.0, 20.0], ["base", 30.5, 40.25]])
    assert main(["points", str(tmp_path / "ddf.nii.gz"), str(tmp_path / "pts.csv"), "--from", "moving",
                 "--out", str(tmp_path / "fixed.csv")]) == 0
    assert "mapped 2 point(s) from the moving image to the fixed image" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "fixed.csv")))
    assert list(rows[0]) == ["name", "x", "y", "x_fixed", "y_fixed", "residual", "inside"]
    assert [r["name"] for r in rows] == ["apex", "base"]
    p = np.array([[float(r["x_fixed"]), float(r["y_fixed"])] for r in rows])
    want = map_points(np.array([[12.0, 20.0], [30.5, 40.25]]), u.astype(np.float32), ID, "moving")[0]
    np.testing.assert_allclose(p, want, atol=1e-5)
    # and back: fixed -> moving gives the original points
    _write_csv(tmp_path / "back.csv", [[r["name"], r["x_fixed"], r["y_fixed"]] for r in rows])
    assert main(["points", str(tmp_path / "ddf.nii.gz"), str(tmp_path / "back.csv"), "--from", "fixed",
                 "--out", str(tmp_path / "moving.csv"), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "moving.csv")))
    got = np.array([[float(r["x_moving"]), float(r["y_moving"])] for r in rows])
    np.testing.assert_allclose(got, [[12.0, 20.0], [30.5, 40.25]], atol=1e-4)


@pytest.mark.parametrize("content,msg", [
    ("name,col,row\na,1,2\n", "needs the columns x,y (found ['name', 'col', 'row'])"),
    ("x,y\n1,two\n", "line 2: x and y must be numbers (got '1', 'two')"),
    ("x,y\n1,nan\n", "line 2: x and y must be finite numbers (got 1, nan)"),
    ("x,y\n\n", "no points in this file"),
])
def test_cli_bad_points_file_is_one_line_and_writes_nothing(tmp_path, capsys, content, msg):
    write_nifti(tmp_path / "ddf.nii.gz", np.zeros((8, 8, 2), np.float32), vector=True)
    (tmp_path / "p.csv").write_text(content)
    rc = main(["points", str(tmp_path / "ddf.nii.gz"), str(tmp_path / "p.csv"), "--from", "fixed", "--out",
               str(tmp_path / "o.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err == f"cxreg points: error: {tmp_path / 'p.csv'}: {msg}"
    assert not (tmp_path / "o.csv").exists()


def test_cli_refuses_a_missing_field_and_an_existing_output(tmp_path, capsys):
    _write_csv(tmp_path / "p.csv", [["a", 1, 2]])
    rc = main(["points", str(tmp_path / "none.nii.gz"), str(tmp_path / "p.csv"), "--from", "fixed", "--out",
               str(tmp_path / "o.csv")])
    assert rc == 1 and capsys.readouterr().err.strip() == (f"cxreg points: error: {tmp_path / 'none.nii.gz'}: "
                                                          "displacement field not found")
    (tmp_path / "o.csv").write_text("keep")
    write_nifti(tmp_path / "ddf.nii.gz", np.zeros((8, 8, 2), np.float32), vector=True)
    rc = main(["points", str(tmp_path / "ddf.nii.gz"), str(tmp_path / "p.csv"), "--from", "fixed", "--out",
               str(tmp_path / "o.csv")])
    assert rc == 1 and "output file exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert (tmp_path / "o.csv").read_text() == "keep"


def test_points_and_cxreg_warp_read_the_field_the_same_way(tmp_path):
    """A one-pixel label at moving point q, warped onto the fixed grid by ``cxreg warp --labels``, lands within a
    pixel of where ``cxreg points --from moving`` maps q (same field file, same direction convention)."""
    from PIL import Image

    u = _smooth_field()
    write_nifti(tmp_path / "ddf.nii.gz", u.astype(np.float32), vector=True)
    lab = np.zeros((48, 40), np.uint8)
    lab[10:15, 8:13] = 1  # a 5 x 5 blob centred on q = (x 10, y 12)
    Image.fromarray(lab).save(tmp_path / "lab.png")
    assert main(["warp", str(tmp_path / "lab.png"), str(tmp_path / "ddf.nii.gz"), "--labels", "--out",
                 str(tmp_path / "w.png"), "--quiet"]) == 0
    r, c = np.nonzero(np.asarray(Image.open(tmp_path / "w.png")))
    p = map_points(np.array([[10.0, 12.0]]), u, ID, "moving")[0][0]
    assert abs(c.mean() - p[0]) < 1.0 and abs(r.mean() - p[1]) < 1.0, (c.mean(), r.mean(), p)
    assert np.hypot(p[0] - 10, p[1] - 12) > 2  # the field moves it: the check is not trivial
