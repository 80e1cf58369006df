"""Writing the DICOM SEG and SR for a 512 x 512 x 300 study (issue 23: under 15 s on 2 cores, within 8 GB).

A synthetic chest of simple shapes (body, two lungs, a 40 mm tumour, a 12 mm nodule) is written
as a 300-slice DICOM CT series; the SEG and SR are then made from it the way ``run`` makes them,
in a fresh process per row so that its peak resident memory is its own. The ``.seg.nrrd`` the
Slicer scene layer would write for the same segments is the peer.

Run: python benchmarks/bench_dicom.py [--slices N]  (in make bench)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import REPO, table  # noqa: F401  (REPO puts the library on sys.path)

import numpy as np

from LungTumorReconDev.dicom_series import write_ct_series
from LungTumorReconLib.coordinates import VolumeGeometry

LIMIT_S = 15.0
LIMIT_GB = 8.0

_CHILD = r"""
import json, sys, time
import numpy as np
from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.pipeline.memory import peak_rss_bytes
from LungTumorReconLib.tumor.measurements import measure_tumor, split_tumors

folder, out, what = sys.argv[1:4]
ct = read_ct(folder)
g = ct.geometry
kk, jj, ii = np.ogrid[:g.size[2], :g.size[1], :g.size[0]]
def ball(c, r):  # (k, j, i) centre and radius in mm
    return (((kk - c[0]) * g.spacing[2]) ** 2 + ((jj - c[1]) * g.spacing[1]) ** 2
            + ((ii - c[2]) * g.spacing[0]) ** 2) <= r * r
segments = {"right lung": ct.array < -500, "left lung": np.zeros(ct.array.shape, bool)}
segments["left lung"][:, :, 256:] = segments["right lung"][:, :, 256:]
segments["right lung"][:, :, 256:] = False
segments["tumor"] = ball((150, 256, 160), 20.0) | ball((200, 240, 360), 6.0)
tumors = [measure_tumor(m, ct.array, g, s) for s, m in split_tumors(segments["tumor"], g, [])]
t0 = time.perf_counter()
if what == "dicom":
    from LungTumorReconLib.dicom.export import build_dicom_results
    build_dicom_results(ct, segments, tumors, methods={"lungs": "threshold", "tumor": "gk"}).save(out)
else:
    from LungTumorReconLib.io.segmentation import write_segments
    write_segments(segments, g, f"{out}/segmentation.seg.nrrd")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_gb": peak_rss_bytes() / 2**30}))
"""


def synthetic_study(folder: Path, slices: int) -> None:
    """Body (30 HU) with two lungs (-850 HU) and two tumours (40 HU), 0.7 x 0.7 x 1.0 mm."""
    geometry = VolumeGeometry((512, 512, slices), (0.7, 0.7, 1.0), (-179.0, -179.0, -150.0))
    kk, jj, ii = np.ogrid[:slices, :512, :512]
    hu = np.full((slices, 512, 512), -1000, dtype=np.int16)
    body = ((jj - 256) / 200.0) ** 2 + ((ii - 256) / 240.0) ** 2 <= 1
    hu[:] = np.where(body, 30, -1000)
    for centre in (160, 352):
        lung = ((jj - 250) / 150.0) ** 2 + ((ii - centre) / 80.0) ** 2 + ((kk - slices / 2) / (slices * 0.45)) ** 2 <= 1
        hu[lung] = -850
    hu[(((kk - 150) * 1.0) ** 2 + ((jj - 256) * 0.7) ** 2 + ((ii - 160) * 0.7) ** 2) <= 400] = 40
    hu[(((kk - 200) * 1.0) ** 2 + ((jj - 240) * 0.7) ** 2 + ((ii - 360) * 0.7) ** 2) <= 36] = 40
    write_ct_series(hu, geometry, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "ct"
        synthetic_study(study, args.slices)
        for what, label in (("seg.nrrd", ".seg.nrrd (peer)"), ("dicom", "DICOM SEG + SR")):
            out = Path(tmp) / what
            out.mkdir()
            done = subprocess.run([sys.executable, "-c", _CHILD, str(study), str(out), what], capture_output=True,
                                  text=True, check=True, cwd=REPO,
                                  env={"PYTHONPATH": f"{REPO / 'LungTumorRecon'}:{REPO}", "PATH": "/usr/bin:/bin"})
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            size_mb = sum(p.stat().st_size for p in out.iterdir()) / 2**20
            rows.append({"output": label, "seconds": measured["seconds"],
                         "peak GB (whole process)": measured["peak_gb"], "files MB": size_mb})
    base = rows[0]["seconds"]
    for row in rows:
        row["time ratio"] = row["seconds"] / base
    print(f"## DICOM output: 512 x 512 x {args.slices} study\n")
    print(table(rows, ["output", "seconds", "time ratio", "peak GB (whole process)", "files MB"]))
    dicom = rows[-1]
    verdict = "met" if dicom["seconds"] < LIMIT_S and dicom["peak GB (whole process)"] < LIMIT_GB else "MISSED"
    print(f"\nTarget: SEG + SR under {LIMIT_S:.0f} s and within {LIMIT_GB:.0f} GB: {verdict} "
          f"({dicom['seconds']:.1f} s, {dicom['peak GB (whole process)']:.2f} GB peak for the whole process, "
          "reading the CT included).")


if __name__ == "__main__":
    main()
