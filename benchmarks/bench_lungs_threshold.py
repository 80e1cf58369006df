"""make bench: the lung methods side by side on the same real CT.

Prints, per method: Dice per lung against cip_chest64's label map (low byte 9–11 left,
12–14 right), the fraction of each real tumour inside the lung segments (lung1, LIDC-IDRI-0001
votes >= 2), wall time and peak memory, and each method's ratios to the threshold baseline.
Only the threshold baseline exists so far; the snake joins in issue 3.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from harness import DATA, measure, table

from LungTumorReconLib.ct_io import read_ct, read_label_on_grid
from LungTumorReconLib.evaluation import dice
from LungTumorReconLib.lungs_threshold import segment_lungs_threshold

METHODS = {"threshold": segment_lungs_threshold}
BASELINE = "threshold"


def main() -> None:
    chest = read_ct(DATA / "cip_chest64" / "ct-64.nrrd")
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "cip_chest64" / "lm-64.nrrd"))) & 255
    ref = {"left lung": np.isin(lm, [9, 10, 11]), "right lung": np.isin(lm, [12, 13, 14])}
    tumour_cases = {
        "lung1": (DATA / "pyradiomics_lung1" / "lung1_image.nrrd", DATA / "pyradiomics_lung1" / "lung1_label.nrrd", 0.0),
        "LIDC-0001": (
            DATA / "lidc_idri_0001" / "dicom",
            DATA / "lidc_idri_0001" / "LIDC-IDRI-0001_small_nodule_votes.nii.gz",
            1.5,
        ),
    }
    cases = {name: read_ct(ct) for name, (ct, _, _) in tumour_cases.items()}
    rows = []
    for name, fn in METHODS.items():
        lungs, seconds, peak = measure(lambda: fn(chest.array, chest.geometry))
        row = {
            "method": name,
            "Dice right (cip64)": dice(lungs.get("right lung", np.zeros_like(ref["right lung"])), ref["right lung"]),
            "Dice left (cip64)": dice(lungs.get("left lung", np.zeros_like(ref["left lung"])), ref["left lung"]),
            "time cip64 (s)": seconds,
            "peak cip64 (MB)": peak,
        }
        for case, (_, label, threshold) in tumour_cases.items():
            ct = cases[case]
            lungs, seconds, peak = measure(lambda: fn(ct.array, ct.geometry))
            tumour = read_label_on_grid(label, ct.geometry, threshold=threshold)
            union = np.zeros_like(tumour)
            for mask in lungs.values():
                union |= mask
            row[f"tumour inside ({case})"] = float((union & tumour).sum() / tumour.sum())
            row[f"time {case} (s)"] = seconds
            row[f"peak {case} (MB)"] = peak
        rows.append(row)
    base = next(r for r in rows if r["method"] == BASELINE)
    for r in rows:
        r["time ratio vs threshold (cip64)"] = r["time cip64 (s)"] / base["time cip64 (s)"]
        r["Dice ratio vs threshold (mean)"] = (r["Dice right (cip64)"] + r["Dice left (cip64)"]) / (
            base["Dice right (cip64)"] + base["Dice left (cip64)"]
        )
    columns = list(rows[0].keys())
    quality = ["method", "Dice right (cip64)", "Dice left (cip64)", "tumour inside (lung1)", "tumour inside (LIDC-0001)",
               "Dice ratio vs threshold (mean)"]
    cost = ["method"] + [c for c in columns if c.startswith(("time", "peak"))]
    print("## Lungs: quality (cip_chest64 label map; real tumours inside the lung segments)\n")
    print(table(rows, quality))
    print("\n## Lungs: cost (wall time on this machine, peak traced memory)\n")
    print(table(rows, cost))


if __name__ == "__main__":
    main()
