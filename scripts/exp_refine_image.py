"""Experiment (not an option of cxreg): the test-time refinement's image term on images under a softened lung
mask (``softN``: ``bundle.registration.soften_attention`` with radius N px) or on the whole image (``full``)
instead of the hard-masked images (``hard``, what cxreg does), with image weight W_IMG, by patching
``bundle.registration.predict_field`` in this process; then ``cxreg evaluate --method ours --model universal
--fix-folds on --quiet --overwrite --out OUT [evaluate args...]``. Measured 2026-12-07, docs/registration.md
("The refinement's image term without the hard mask").

    python scripts/exp_refine_image.py MODE W_IMG OUT --dataset SHEN --seg-model "SHEN256+universal256+SHEN+universal@tta" \
        --refine 20 --refine-mask-weight 80 --max-pairs 300 --seed 0
"""
import inspect, sys, textwrap
import bundle.registration as R

mode, w_img, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
src = textwrap.dedent(inspect.getsource(R.predict_field))
old_m = "full_m = moving * moving_attn if settings.attention else moving"
old_f = "full_f = fixed * fixed_attn if settings.attention else fixed"
assert old_m in src and old_f in src
if mode == "full":
    src = src.replace(old_m, "full_m = moving").replace(old_f, "full_f = fixed")
elif mode.startswith("soft"):
    r = int(mode[4:])
    src = src.replace(old_m, f"full_m = moving * soften_attention(moving_attn, {r})")
    src = src.replace(old_f, f"full_f = fixed * soften_attention(fixed_attn, {r})")
ns = R.__dict__
exec(compile(src, R.__file__, "exec"), ns)
import bundle.refine as F
orig_check = F.check_weights
def cw(w):
    w = orig_check(w)
    w["w_img"] = w_img
    return w
F.check_weights = cw
from bundle.cli import main
sys.exit(main(["evaluate", "--method", "ours", "--model", "universal", "--quiet", "--overwrite", "--fix-folds", "on",
               "--out", out] + sys.argv[4:]))
