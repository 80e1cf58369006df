"""Peak memory of every path on a 512 x 512 x 600 synthetic CT (issue 11: within 8 GB on CPU).

Each path is one ``lungtumorrecon run`` in its own process, so its peak resident set size
(VmHWM, the kernel's figure) is the whole cost: reading, every stage, writing the results
folder and the scene bundle. The CT is a 512 x 512 x 100 synthetic thorax, run as it is and
resampled to 600 slices of 0.5 mm (rendering 600 slices directly would take longer than every
run below). The two sizes give each path's fixed cost and bytes per voxel (a straight line
through both), which is what ``memory_budget`` estimates a run's peak from; its estimate is
printed beside the measurement, with the memory check off so that every path runs.

Run: python benchmarks/bench_memory.py [--paths NAME ...]  (in make bench)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, table  # noqa: F401  (REPO puts the library on sys.path)

import numpy as np

from LungTumorReconLib.pipeline import memory as memory_budget
from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.io.ct import write_image
from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json
from LungTumorReconDev.synthetic_thorax import make_thorax

LIMIT_GB = 8.0
# name -> run options; seeded unless marked. Every --lungs, --tumor and --recon method appears.
PATHS = {
    "default (snake, gk, interp-mc)": [],
    "lungs threshold": ["--lungs", "threshold", "--tumor", "none", "--recon", "none"],
    "lungs resunet": ["--lungs", "resunet", "--tumor", "none", "--recon", "none"],
    "tumor fcm": ["--lungs", "threshold", "--tumor", "fcm", "--recon", "none"],
    "tumor kmeans": ["--lungs", "threshold", "--tumor", "kmeans", "--recon", "none"],
    "tumor gk, no seed (candidates)": ["--lungs", "threshold", "--recon", "none", "UNSEEDED"],
    "tumor r3d-dense-unet": ["--lungs", "threshold", "--tumor", "r3d-dense-unet", "--recon", "none"],
    "tumor dense-highres3dnet": ["--lungs", "threshold", "--tumor", "dense-highres3dnet", "--recon", "none"],
    "tumor resunet": ["--lungs", "threshold", "--tumor", "resunet", "--recon", "none"],
    "tumor lnhg": ["--lungs", "threshold", "--tumor", "lnhg", "--recon", "none"],
    "tumor r3d-dense-unet, no seed": ["--lungs", "threshold", "--tumor", "r3d-dense-unet", "--recon", "none",
                                      "UNSEEDED"],
    "tumor lnhg, no seed": ["--lungs", "threshold", "--tumor", "lnhg", "--recon", "none", "UNSEEDED"],
    "recon mc": ["--lungs", "threshold", "--recon", "mc"],
    "recon mc-fairing": ["--lungs", "threshold", "--recon", "mc-fairing"],
    "recon gan": ["--lungs", "threshold", "--recon", "gan"],
}

_CHILD = ("import sys\n"
          "from LungTumorReconLib.cli import main\n"
          "from LungTumorReconLib.pipeline.memory import peak_rss_bytes\n"
          "code = main(sys.argv[1:])\n"
          "print('PEAK_RSS_BYTES', int(peak_rss_bytes()), file=sys.stderr)\n"
          "sys.exit(code)\n")


def make_cases(folder: Path) -> dict[int, tuple[Path, Path]]:
    """slices -> (CT, seeds): the thorax at 100 slices of 3 mm, and resampled to 600 of 0.5 mm."""
    case = make_thorax(size=(512, 512, 100), spacing=(0.7, 0.7, 3.0), tumors=("solid", "juxta-pleural"), seed=9001)
    g = case.geometry
    seeds = [Seed("tumor", tuple(t["centre_lps"])) for t in case.tumors]
    geometry600 = VolumeGeometry(size=(512, 512, 600), spacing=(0.7, 0.7, 0.5),
                                 origin=(g.origin[0], g.origin[1], g.origin[2] - 1.25), direction=g.direction)
    cases = {}
    for slices, ct, geometry in ((100, case.ct, g), (600, np.repeat(case.ct, 6, axis=0), geometry600)):
        ct_path, seeds_path = folder / f"ct{slices}.nrrd", folder / f"ct{slices}.mrk.json"
        write_image(ct, geometry, ct_path)
        seeds_path.write_text(json.dumps(seeds_to_markups_json(seeds)))
        cases[slices] = (ct_path, seeds_path)
    return cases


def estimate_gb(options: list[str], slices: int) -> float:
    """memory_budget's estimate for this path (what a run is refused on)."""
    named = dict(zip(options[::2], options[1::2]))
    tumor = named.get("--tumor", "gk")
    return memory_budget.estimate_peak_bytes(512 * 512 * slices, named.get("--lungs", "snake"), tumor,
                                             named.get("--recon", "interp-mc"),
                                             seeded="UNSEEDED" not in options) / memory_budget.GB


def run_path(ct_path: Path, seeds_path: Path, options: list[str], out: Path) -> dict:
    args = [a for a in options if a != "UNSEEDED"]
    if "UNSEEDED" not in options:
        args += ["--seeds", str(seeds_path)]
    cmd = [sys.executable, "-c", _CHILD, "run", str(ct_path), "--out", str(out), "--quiet", "--overwrite",
           "--skip-memory-check", *args]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    rss = [int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("PEAK_RSS_BYTES")]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    return {"seconds": seconds, "peak RSS (GB)": rss[0] / 1024**3 if rss else None, "exit": run.returncode,
            "note": errors[-1][:80] if errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paths", nargs="*", choices=list(PATHS), help="run only these paths")
    args = parser.parse_args()
    print(f"## Peak memory on a 512 x 512 x 600 CT, each path in its own process (limit {LIMIT_GB:.0f} GB)\n")
    rows = []
    voxels = {n: 512 * 512 * n for n in (100, 600)}
    with tempfile.TemporaryDirectory(prefix="ltr-bench-memory-") as tmp:
        cases = make_cases(Path(tmp))
        for name in args.paths or list(PATHS):
            runs = {n: run_path(*cases[n], PATHS[name], Path(tmp) / "out") for n in (100, 600)}
            gb = {n: r["peak RSS (GB)"] for n, r in runs.items()}
            row = {"path": name, "seconds": runs[600]["seconds"], "peak RSS (GB)": gb[600], "at 100 slices (GB)": gb[100]}
            if None not in gb.values():
                per_voxel = (gb[600] - gb[100]) * memory_budget.GB / (voxels[600] - voxels[100])
                row["bytes/voxel"] = per_voxel
                row["fixed (GB)"] = gb[100] - per_voxel * voxels[100] / memory_budget.GB
            row["estimate (GB)"] = estimate_gb(PATHS[name], 600)
            row["estimate >= measured, 100 / 600"] = " / ".join(
                "yes" if gb[n] is not None and estimate_gb(PATHS[name], n) >= gb[n] else "NO" for n in (100, 600))
            row["within 8 GB"] = "yes" if gb[600] is not None and gb[600] <= LIMIT_GB and runs[600]["exit"] == 0 else "NO"
            row["exit"] = runs[600]["exit"] or runs[100]["exit"]
            row["note"] = runs[600]["note"] or runs[100]["note"]
            rows.append(row)
            print(f"  {name}: {row['seconds']:.1f} s, {gb[600]} GB at 600 slices, {gb[100]} GB at 100, "
                  f"exit {row['exit']}", file=sys.stderr, flush=True)
    worst = max((r["peak RSS (GB)"] or 0) for r in rows)
    for r in rows:
        r["ratio to the worst"] = (r["peak RSS (GB)"] or 0) / worst if worst else None
    print(table(rows, ["path", "seconds", "peak RSS (GB)", "ratio to the worst", "within 8 GB", "at 100 slices (GB)",
                       "fixed (GB)", "bytes/voxel", "estimate (GB)", "estimate >= measured, 100 / 600", "exit",
                       "note"]))


if __name__ == "__main__":
    main()
