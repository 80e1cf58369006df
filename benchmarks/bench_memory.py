"""Peak memory of every path on a 512 x 512 x 600 synthetic CT (issue 11: within 8 GB on CPU).

Each path is one ``lungtumorrecon run`` in its own process, so its peak resident set size
(max RSS, the kernel's figure) is the whole cost: reading, every stage, writing the results
folder and the scene bundle. The CT is a 512 x 512 x 100 synthetic thorax resampled to 600
slices of 0.5 mm (rendering 600 slices directly would take longer than every run below).

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

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.ct_io import write_image
from LungTumorReconLib.seeds_io import Seed, seeds_to_markups_json
from LungTumorReconLib.synthetic_thorax import make_thorax

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

_CHILD = ("import resource, sys\n"
          "from LungTumorReconLib.cli import main\n"
          "code = main(sys.argv[1:])\n"
          "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
          "sys.exit(code)\n")


def make_case(folder: Path) -> tuple[Path, Path]:
    case = make_thorax(size=(512, 512, 100), spacing=(0.7, 0.7, 3.0), tumors=("solid", "juxta-pleural"), seed=9001)
    ct = np.repeat(case.ct, 6, axis=0)  # 100 slices of 3 mm -> 600 of 0.5 mm
    g = case.geometry
    geometry = VolumeGeometry(size=(512, 512, 600), spacing=(0.7, 0.7, 0.5),
                              origin=(g.origin[0], g.origin[1], g.origin[2] - 1.25), direction=g.direction)
    ct_path, seeds_path = folder / "ct600.nrrd", folder / "ct600.mrk.json"
    write_image(ct, geometry, ct_path)
    seeds = [Seed("tumor", tuple(t["centre_lps"])) for t in case.tumors]
    seeds_path.write_text(json.dumps(seeds_to_markups_json(seeds)))
    return ct_path, seeds_path


def run_path(ct_path: Path, seeds_path: Path, options: list[str], out: Path) -> dict:
    args = [a for a in options if a != "UNSEEDED"]
    if "UNSEEDED" not in options:
        args += ["--seeds", str(seeds_path)]
    cmd = [sys.executable, "-c", _CHILD, "run", str(ct_path), "--out", str(out), "--quiet", "--overwrite", *args]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    rss = [int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("MAXRSS_KB")]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    return {"seconds": seconds, "max RSS (GB)": rss[0] / 1024**2 if rss else None, "exit": run.returncode,
            "note": errors[-1][:80] if errors else ""}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paths", nargs="*", choices=list(PATHS), help="run only these paths")
    args = parser.parse_args()
    print(f"## Peak memory on a 512 x 512 x 600 CT, each path in its own process (limit {LIMIT_GB:.0f} GB)\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ltr-bench-memory-") as tmp:
        ct_path, seeds_path = make_case(Path(tmp))
        for name in args.paths or list(PATHS):
            row = {"path": name, **run_path(ct_path, seeds_path, PATHS[name], Path(tmp) / "out")}
            rss = row["max RSS (GB)"]
            row["within 8 GB"] = "yes" if rss is not None and rss <= LIMIT_GB and row["exit"] == 0 else "NO"
            rows.append(row)
            print(f"  {name}: {row['seconds']:.1f} s, {rss if rss is None else round(rss, 2)} GB, exit {row['exit']}",
                  file=sys.stderr, flush=True)
    worst = max((r["max RSS (GB)"] or 0) for r in rows)
    for r in rows:
        r["ratio to the worst"] = (r["max RSS (GB)"] or 0) / worst if worst else None
    print(table(rows, ["path", "seconds", "max RSS (GB)", "ratio to the worst", "within 8 GB", "exit", "note"]))


if __name__ == "__main__":
    main()
