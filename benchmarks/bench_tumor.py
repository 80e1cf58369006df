"""make bench: the tumour methods (GK, FCM, K-means) side by side with the same seeds.

Cases: the pyradiomics lung1 label; LIDC-IDRI-0001 against the >= 2 of 4 readers consensus
(with each reader's own Dice against it: the human ceiling); the IBSI GTV with no lungs
(--lungs none on the crop); synthetic cases by tumour kind. The seed is the deepest voxel
of the reference (where a user would click). Also GK's time against scikit-fuzzy's FCM on the
same features and iterations.
"""

from __future__ import annotations

import time

import numpy as np
from harness import DATA, measure, table
from scipy import ndimage as ndi

from LungTumorReconLib.ct_io import read_ct, read_label_on_grid
from LungTumorReconLib.evaluation import compare_masks, dice
from LungTumorReconLib.gk_clustering import fuzzy_c_means, gustafson_kessel
from LungTumorReconLib.lidc_annotations import read_lidc_reader_masks
from LungTumorReconLib.lungs_snake import segment_lungs_snake
from LungTumorReconLib.tumor_clustering import TumorClusterParameters, lung_cavity, segment_tumor_at_seed, voxel_features

METHODS = ("gk", "fcm", "kmeans", "gk per-slice")  # the last clusters each slice alone, as the paper
SYNTHETIC_SEEDS = (11, 23, 37)  # three random cases of each kind: one case per kind hides failures


def _deepest(mask, spacing):
    d = ndi.distance_transform_edt(mask, sampling=spacing)
    return tuple(int(v) for v in np.unravel_index(np.argmax(d), mask.shape))


def cases():
    out = []
    for name, ct_path, label, threshold, use_lungs in (
        ("lung1", DATA / "pyradiomics_lung1" / "lung1_image.nrrd", DATA / "pyradiomics_lung1" / "lung1_label.nrrd", 0.0, True),
        ("LIDC-0001 (>=2 readers)", DATA / "lidc_idri_0001" / "dicom",
         DATA / "lidc_idri_0001" / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", 1.5, True),
        ("IBSI GTV (--lungs none)", DATA / "ibsi_nsclc_crop" / "dicom", DATA / "ibsi_nsclc_crop" / "nifti" / "mask.nii.gz",
         0.0, False),
    ):
        ct = read_ct(ct_path)
        truth = read_label_on_grid(label, ct.geometry, threshold=threshold)
        lungs = lung_cavity(ct.array, ct.geometry)  # what the pipeline uses with --lungs none
        if use_lungs:
            found = segment_lungs_snake(ct.array, ct.geometry)
            lungs = np.zeros(truth.shape, bool)
            for m in found.values():
                lungs |= m
        out.append((name, ct.array, ct.geometry, truth, lungs))
    from LungTumorReconLib.synthetic_thorax import TUMOR_KINDS, make_thorax

    for generator_seed in SYNTHETIC_SEEDS:
        for kind in TUMOR_KINDS:
            case = make_thorax(size=(256, 256, 100), spacing=(1.2, 1.2, 2.5), tumors=(kind,), seed=generator_seed)
            found = segment_lungs_snake(case.ct, case.geometry)
            out.append((f"synthetic {kind} #{generator_seed}", case.ct, case.geometry, case.labels["tumor"],
                        found["right lung"] | found["left lung"]))
    return out


def main() -> None:
    rows = []
    for name, hu, geometry, truth, lungs in cases():
        seed = _deepest(truth, geometry.spacing[::-1])
        for method in METHODS:
            params = TumorClusterParameters(per_slice=method.endswith("per-slice"))
            result, seconds, peak = measure(
                lambda: segment_tumor_at_seed(hu, geometry, seed, lungs, method.split()[0], params))
            scores = compare_masks(result.mask, truth, tuple(geometry.spacing[::-1]))
            rows.append({"case": name, "method": method, "Dice": scores["dice"], "IoU": scores["iou"],
                         "HD95 (mm)": scores["hd95_mm"], "time (s)": seconds, "peak (MB)": peak})
    base = {r["case"]: r for r in rows if r["method"] == "gk"}
    for r in rows:
        r["Dice ratio vs GK"] = r["Dice"] / max(base[r["case"]]["Dice"], 1e-9)
        r["time ratio vs GK"] = r["time (s)"] / base[r["case"]]["time (s)"]
    print("## Tumour: clustering methods from the same seed (one tumour per case)\n")
    print(table(rows, ["case", "method", "Dice", "IoU", "HD95 (mm)", "Dice ratio vs GK", "time (s)",
                       "time ratio vs GK", "peak (MB)"]))

    summary = []
    for kind in sorted({r["case"].split(" #")[0] for r in rows if r["case"].startswith("synthetic")}):
        for method in METHODS:
            d = [r["Dice"] for r in rows if r["case"].split(" #")[0] == kind and r["method"] == method]
            summary.append({"kind": kind, "method": method, "cases": len(d), "mean Dice": float(np.mean(d)),
                            "min Dice": float(np.min(d))})
    print(f"\n## Synthetic tumours by kind (generator seeds {', '.join(map(str, SYNTHETIC_SEEDS))})\n")
    print(table(summary, ["kind", "method", "cases", "mean Dice", "min Dice"]))

    folder = DATA / "lidc_idri_0001"
    ct = read_ct(folder / "dicom")
    consensus = read_label_on_grid(folder / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", ct.geometry, threshold=1.5)
    readers = read_lidc_reader_masks(folder / "xml" / "69.xml", ct.geometry)
    ceiling = [dice(m, consensus) for m in readers]
    print("\n## LIDC-IDRI-0001: each reader against the >= 2 consensus (the human ceiling; each reader is part "
          "of the consensus, so this is generous)\n")
    print(table([{"reader": i + 1, "Dice": d} for i, d in enumerate(ceiling)] +
                [{"reader": "mean", "Dice": float(np.mean(ceiling))}], ["reader", "Dice"]))

    hu = read_ct(DATA / "pyradiomics_lung1" / "lung1_image.nrrd").array
    feats = voxel_features(hu[20:40, 250:400, 150:300], (5.0, 0.57, 0.57), 2.0).reshape(-1, 3)
    feats = (feats - feats.mean(0)) / feats.std(0)
    timing = []
    for name, fn in (("GK (ours, numpy)", gustafson_kessel), ("FCM (scikit-fuzzy cmeans)", fuzzy_c_means)):
        t0 = time.perf_counter()
        fn(feats, 2, tol=0.0, max_iter=50)
        timing.append({"clustering": name, "voxels": len(feats), "iterations": 50, "time (s)": time.perf_counter() - t0})
    for r in timing:
        r["time ratio vs FCM"] = r["time (s)"] / timing[1]["time (s)"]
    print("\n## GK against scikit-fuzzy's FCM: same features (HU, local mean, local std), 2 clusters, 50 iterations\n")
    print(table(timing, ["clustering", "voxels", "iterations", "time (s)", "time ratio vs FCM"]))


if __name__ == "__main__":
    main()
