"""Where the peak memory of one ``cxreg register`` run is: RSS sampled every ~3 ms in a thread, with the
innermost cxreg frame of the main thread at each sample (docs/reliability.md, "Limits").

    bash scripts/register_memory.sh /tmp/cxreg_memory      # makes the synthetic pairs
    python scripts/register_peak.py /tmp/cxreg_memory/moving2048.png /tmp/cxreg_memory/fixed2048.png [--stub-pictures]

Prints the peak RSS (MiB) with the cxreg call stack at that moment, the peak while the outputs are written
(``write_outputs``) and the 8 cxreg lines with the highest RSS. ``--stub-pictures`` replaces the overlay
picture by a 4 x 4 one, to see what the picture costs.
"""

import argparse
import resource
import sys
import tempfile
import threading
import time
import traceback


def rss_mib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("moving")
    ap.add_argument("fixed")
    ap.add_argument("--stub-pictures", action="store_true")
    a = ap.parse_args()
    import bundle.register as reg

    main_id = threading.get_ident()
    state = {"phase": "register", "peak": 0, "stack": [], "by_line": {}, "by_phase": {}}

    def sample():
        while True:
            r = rss_mib()
            fr = sys._current_frames().get(main_id)
            here = [f"{s.filename.rsplit('/', 1)[-1]}:{s.lineno} {s.name}" for s in traceback.extract_stack(fr)
                    if "/bundle/" in s.filename] if fr is not None else []
            key = here[-1] if here else "?"
            state["by_line"][key] = max(state["by_line"].get(key, 0), r)
            state["by_phase"][state["phase"]] = max(state["by_phase"].get(state["phase"], 0), r)
            if r > state["peak"]:
                state["peak"], state["stack"] = r, here
            time.sleep(0.003)

    threading.Thread(target=sample, daemon=True).start()
    write = reg.write_outputs

    def timed_write(*args, **kw):
        state["phase"] = "write_outputs"
        try:
            return write(*args, **kw)
        finally:
            state["phase"] = "after"

    reg.write_outputs = timed_write
    if a.stub_pictures:
        import numpy as np
        from PIL import Image

        import bundle.visualize as vis

        vis.tile = lambda *args, **kw: Image.new("RGB", (4, 4))
        vis.overlay = lambda img, masks_colors: np.zeros((4, 4, 3), np.uint8)
        vis.checkerboard = lambda x, y, tiles=8: np.zeros((4, 4, 3), np.uint8)
    from bundle.cli import main as cxreg

    with tempfile.TemporaryDirectory() as d:
        cxreg(["register", a.moving, a.fixed, "--out", f"{d}/o", "--quiet"])
    time.sleep(0.05)
    print(f"peak {state['peak']} MiB (max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB), at:")
    print("  " + "\n  ".join(state["stack"]))
    print("peak per phase (MiB):", state["by_phase"])
    for line, r in sorted(state["by_line"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"{r:6d}  {line}")


if __name__ == "__main__":
    main()
