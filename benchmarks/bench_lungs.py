"""make bench: the lung methods side by side on the same data.

1. Whole-volume quality: Dice per lung against cip_chest64's label map (low byte 9–11 left,
   12–14 right) and against the truth of synthetic thorax cases; the fraction of each real
   tumour inside the lung segments (lung1; LIDC-IDRI-0001 votes >= 2); wall time and peak
   memory; ratios to the threshold baseline.
2. Peers on the same slices from the same start: each slice's true lung outline shrunk by
   3 mm (at least two voxels) is the start contour; our Viterbi snake and scikit-image's ``active_contour`` (the
   gradient-descent snake of Kass et al.) refine it; Dice against the truth per slice and wall
   time. Reported: the time ``active_contour`` needs to reach our Dice (iteration sweep) and the
   Dice it reaches in our wall time, as ratios.
3. Whole-volume time on a synthetic 512×512×150 case.
4. Lungs that keep what lies against the pleura (:mod:`lung_border`): the share of each
   tumour inside the lung segments with and without bridging, on synthetic juxta-pleural
   tumours (20-30 mm) and masses (30-60 mm), marked "tuned on" where the bridging was
   adjusted after looking at them (``PLEURAL_SEEDS``), and on the real
   tumours (lung1, LIDC-IDRI-0001, the IBSI crop's 359 mL mass); the volume bridging adds
   outside the true lungs; the lungs' Dice on the synthetic truth.

``resunet`` is seed paper 003's organ stage (a trained network): cip_chest64 is in its
training data, so its row there is marked "trained on" and is not a held-out score; the
synthetic cases (generator seeds 1-5) are held out (its training uses seeds from 500).
"""

from __future__ import annotations

import functools
import sys
import time

import numpy as np
import SimpleITK as sitk
from harness import DATA, measure, table
from scipy import ndimage as ndi
from skimage import measure as skmeasure
from skimage.segmentation import active_contour

from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.evaluation import dice
from LungTumorReconLib.lungs.air import LungAirParameters
from LungTumorReconLib.lungs.border import bridge_pleural_indentations
from LungTumorReconLib.lungs.snake import SnakeLungParameters, fill_polygon, segment_lungs_snake
from LungTumorReconLib.lungs.threshold import segment_lungs_threshold
from LungTumorReconLib.lungs.snake_viterbi import SnakeParameters, slice_energy, viterbi_snake



@functools.cache
def _organ_model():
    from LungTumorReconLib.lungs.resunet import LUNG_MODEL
    from LungTumorReconLib.networks.registry import load_model

    return load_model(LUNG_MODEL)


def segment_lungs_resunet(hu, geometry):
    from LungTumorReconLib.lungs.resunet import segment_lungs_resunet as segment

    return segment(hu, geometry, _organ_model())


METHODS = {"snake": segment_lungs_snake, "threshold": segment_lungs_threshold, "resunet": segment_lungs_resunet}
TRAINED_ON = {("resunet", "cip_chest64")}
BASELINE = "threshold"
LUNGS = ("right lung", "left lung")
QUICK = "--quick" in sys.argv  # smaller synthetic cases, for a fast look


def synthetic_cases():
    from LungTumorReconDev.synthetic_thorax import make_thorax

    specs = [
        dict(size=(256, 256, 80), spacing=(1.4, 1.4, 4.0), tumors=("solid", "juxta-pleural"), seed=1),
        dict(size=(256, 256, 120), spacing=(1.3, 1.3, 2.5), tumors=("spiculated", "juxta-vascular"), seed=2,
             lungs_touch=True),
    ]
    if not QUICK:
        specs.append(dict(size=(512, 512, 100), spacing=(0.7, 0.7, 3.0), tumors=("part-solid", "ground-glass"),
                          seed=3))
    return [(f"synthetic {s['size'][0]}x{s['size'][1]}x{s['size'][2]}", make_thorax(**s)) for s in specs]


def whole_volume() -> None:
    chest = read_ct(DATA / "cip_chest64" / "ct-64.nrrd")
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "cip_chest64" / "lm-64.nrrd"))) & 255
    cases = [("cip_chest64", chest.array, chest.geometry,
              {"left lung": np.isin(lm, [9, 10, 11]), "right lung": np.isin(lm, [12, 13, 14])})]
    for name, case in synthetic_cases():
        cases.append((name, case.ct, case.geometry, {n: case.labels[n] for n in LUNGS}))
    tumour_cases = {
        "lung1": (DATA / "pyradiomics_lung1" / "lung1_image.nrrd", DATA / "pyradiomics_lung1" / "lung1_label.nrrd", 0.0),
        "LIDC-0001": (DATA / "lidc_idri_0001" / "dicom",
                      DATA / "lidc_idri_0001" / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", 1.5),
    }
    rows = []
    _organ_model()  # loaded before the timings
    for method, fn in METHODS.items():
        for case, hu, geometry, ref in cases:
            lungs, seconds, peak = measure(lambda: fn(hu, geometry))
            zero = np.zeros(hu.shape, bool)
            rows.append({"method": method, "case": case, "held out": "trained on" if (method, case) in TRAINED_ON else "yes",
                         "Dice right": dice(lungs.get("right lung", zero), ref["right lung"]),
                         "Dice left": dice(lungs.get("left lung", zero), ref["left lung"]),
                         "time (s)": seconds, "peak (MB)": peak})
        for case, (ct_path, label, threshold) in tumour_cases.items():
            ct = read_ct(ct_path)
            lungs, seconds, peak = measure(lambda: fn(ct.array, ct.geometry))
            tumour = read_label_on_grid(label, ct.geometry, threshold=threshold)
            union = np.zeros_like(tumour)
            for m in lungs.values():
                union |= m
            rows.append({"method": method, "case": case, "tumour inside": float((union & tumour).sum() / tumour.sum()),
                         "time (s)": seconds, "peak (MB)": peak})
    base = {r["case"]: r for r in rows if r["method"] == BASELINE}
    for r in rows:
        b = base[r["case"]]
        r["time ratio vs threshold"] = r["time (s)"] / b["time (s)"]
        if "Dice right" in r:
            r["Dice ratio vs threshold"] = (r["Dice right"] + r["Dice left"]) / (b["Dice right"] + b["Dice left"])
    print("## Lungs, whole volumes (Dice against truth; real tumours inside the lung segments)\n")
    print(table(rows, ["method", "case", "held out", "Dice right", "Dice left", "tumour inside", "Dice ratio vs threshold",
                       "time (s)", "time ratio vs threshold", "peak (MB)"]))


def _slices_with_truth(hu, geometry, ref, every: int):
    for name in LUNGS:
        ks = np.flatnonzero(ref[name].sum(axis=(1, 2)) > 50)
        for k in ks[len(ks) // 8 : -len(ks) // 8 or None : every]:  # skip apex/base specks
            labels, n = ndi.label(ref[name][k])
            if n == 0:
                continue
            truth = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1  # the main island
            yield name, k, truth


def _start_contour(truth: np.ndarray, spacing: tuple[float, float], shrink_mm: float = 3.0) -> np.ndarray | None:
    shrink_mm = max(shrink_mm, 2 * max(spacing))  # at least two voxels, so that coarse grids move too
    inner = ndi.distance_transform_edt(truth, sampling=spacing) > shrink_mm
    contours = skmeasure.find_contours(np.pad(inner, 1).astype(np.float32), 0.5)
    if not contours:
        return None
    c = max(contours, key=len) - 1
    from LungTumorReconLib.lungs.snake_viterbi import resample_closed

    n = int(np.clip(len(c) / 2, 40, 300))
    return resample_closed(c, n)


def peers() -> None:
    chest = read_ct(DATA / "cip_chest64" / "ct-64.nrrd")
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "cip_chest64" / "lm-64.nrrd"))) & 255
    ref = {"left lung": np.isin(lm, [9, 10, 11]), "right lung": np.isin(lm, [12, 13, 14])}
    _, synth = synthetic_cases()[0]
    datasets = [("cip_chest64", chest.array, chest.geometry, ref, 4),
                ("synthetic 256²", synth.ct, synth.geometry, {n: synth.labels[n] for n in LUNGS}, 4)]
    iterations = (10, 30, 100, 300, 1000, 2500)
    rows = []
    for dname, hu, geometry, reference, every in datasets:
        spacing = (geometry.spacing[1], geometry.spacing[0])
        ours_d, ours_t, skimage_d, skimage_t = [], [], {i: [] for i in iterations}, {i: [] for i in iterations}
        start_d = []
        for name, k, truth in _slices_with_truth(hu, geometry, reference, every):
            start = _start_contour(truth, spacing)
            if start is None:
                continue
            start_d.append(dice(fill_polygon(start, truth.shape), truth))
            t0 = time.perf_counter()
            energy = slice_energy(hu[k], spacing, SnakeParameters())
            out = viterbi_snake(start, energy, SnakeParameters())
            ours_t.append(time.perf_counter() - t0)
            ours_d.append(dice(fill_polygon(out, truth.shape), truth))
            image = ndi.gaussian_filter(np.clip(hu[k].astype(float), -1000, 200), 1.0)
            image = (image - image.min()) / max(np.ptp(image), 1e-9)
            for it in iterations:
                t0 = time.perf_counter()
                snake = active_contour(image, start, max_num_iter=it)
                skimage_t[it].append(time.perf_counter() - t0)
                skimage_d[it].append(dice(fill_polygon(snake, truth.shape), truth))
        our_dice, our_time = float(np.mean(ours_d)), float(np.sum(ours_t))
        rows.append({"data": dname, "method": "start contour (true outline shrunk)", "slices": len(ours_d),
                     "mean Dice": float(np.mean(start_d))})
        rows.append({"data": dname, "method": "Viterbi snake (ours)", "slices": len(ours_d), "mean Dice": our_dice,
                     "time (s)": our_time, "time ratio": 1.0})
        for it in iterations:
            rows.append({"data": dname, "method": f"active_contour {it} it", "slices": len(ours_d),
                         "mean Dice": float(np.mean(skimage_d[it])), "time (s)": float(np.sum(skimage_t[it])),
                         "time ratio": float(np.sum(skimage_t[it])) / our_time})
        reached = [it for it in iterations if np.mean(skimage_d[it]) >= our_dice]
        same_time = min(iterations, key=lambda it: abs(np.sum(skimage_t[it]) - our_time))
        if reached:
            it = reached[0]
            verdict = (f"active_contour reaches our Dice {our_dice:.4f} at {it} iterations: "
                       f"{np.sum(skimage_t[it]) / our_time:.1f}× our time")
        else:
            verdict = (f"active_contour does not reach our Dice {our_dice:.4f} within {iterations[-1]} iterations "
                       f"(best {max(np.mean(v) for v in skimage_d.values()):.4f}); at {iterations[-1]} iterations it "
                       f"takes {np.sum(skimage_t[iterations[-1]]) / our_time:.1f}× our time")
        print(f"- {dname}: {verdict}; in about our wall time ({same_time} iterations, "
              f"{np.sum(skimage_t[same_time]):.2f} s vs {our_time:.2f} s) it reaches Dice "
              f"{np.mean(skimage_d[same_time]):.4f} vs our {our_dice:.4f}")
    print("\n## Lungs, peers on the same slices from the same start (Dice per slice, summed time)\n")
    print(table(rows, ["data", "method", "slices", "mean Dice", "time (s)", "time ratio"]))


def large_volume() -> None:
    from LungTumorReconDev.synthetic_thorax import make_thorax

    case = make_thorax(size=(512, 512, 150), spacing=(0.7, 0.7, 2.0), tumors=("solid",), seed=5)
    rows = []
    for method, fn in METHODS.items():
        lungs, seconds, peak = measure(lambda: fn(case.ct, case.geometry))
        rows.append({"method": method, "case": "synthetic 512x512x150", "time (s)": seconds, "peak (MB)": peak,
                     "Dice right": dice(lungs.get("right lung", np.zeros(1, bool)), case.labels["right lung"]),
                     "Dice left": dice(lungs.get("left lung", np.zeros(1, bool)), case.labels["left lung"])})
    print("\n## Lungs, whole-volume time on 512×512×150 (2 cores)\n")
    print(table(rows, ["method", "case", "time (s)", "peak (MB)", "Dice right", "Dice left"]))


UNBRIDGED = {
    "snake": lambda hu, g: segment_lungs_snake(hu, g, params=SnakeLungParameters(air=LungAirParameters(bridge_pleura=False))),
    "threshold": lambda hu, g: segment_lungs_threshold(hu, g, LungAirParameters(bridge_pleura=False)),
}
# Generator seeds: the bridging's parameters were chosen looking at 1, 11, 23, 37, 41, 53, then its
# failures on 61-79 were studied and fixed (a closing running along a cropped edge; a mass near the
# apex). 83 and up were first scored after that.
PLEURAL_SEEDS = {"juxta-pleural": (61, 67, 71, 83, 89, 97), "pleural-mass": (61, 67, 71, 73, 79, 83, 89, 97, 101, 103)}
PLEURAL_TUNED_ON = {61, 67, 71, 73, 79}
PLEURAL_TARGETS = {"synthetic": 0.95, "IBSI": 0.90, "lung1": 0.99, "LIDC-0001": 0.99}


def _union(masks: dict[str, np.ndarray], shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m in masks.values():
        out |= m
    return out


def pleural_cases():
    """(name, hu, geometry, tumour mask, true lungs or None, held out)."""
    from LungTumorReconDev.synthetic_thorax import make_thorax

    cases = []
    specs = [("juxta-pleural", s) for s in PLEURAL_SEEDS["juxta-pleural"]] + \
        [("pleural-mass", s) for s in PLEURAL_SEEDS["pleural-mass"]]
    for kind, seed in specs[: 4 if QUICK else None]:
        c = make_thorax(size=(256, 256, 80), spacing=(1.4, 1.4, 4.0), tumors=(kind,), seed=seed)
        tumour = c.labels["tumor"]
        name = f"synthetic {kind} #{seed} ({2 * c.tumors[0]['radius_mm']:.0f} mm)"
        cases.append((name, c.ct, c.geometry, tumour, {n: c.labels[n] for n in LUNGS},
                      "tuned on" if seed in PLEURAL_TUNED_ON else "yes"))
    for name, ct_path, label, threshold in (
        ("lung1", DATA / "pyradiomics_lung1" / "lung1_image.nrrd", DATA / "pyradiomics_lung1" / "lung1_label.nrrd", 0.0),
        ("LIDC-0001", DATA / "lidc_idri_0001" / "dicom", DATA / "lidc_idri_0001" / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", 1.5),
        ("IBSI crop", DATA / "ibsi_nsclc_crop" / "dicom", DATA / "ibsi_nsclc_crop" / "nifti" / "mask.nii.gz", 0.0),
    ):
        ct = read_ct(ct_path)
        cases.append((name, ct.array, ct.geometry, read_label_on_grid(label, ct.geometry, threshold=threshold), None,
                      "yes"))
    return cases


def pleural() -> None:
    rows, misses = [], []
    for case, hu, geometry, tumour, truth, held_out in pleural_cases():
        for method in ("snake", "threshold"):
            # the method with bridging is exactly its unbridged lungs, then bridged: run it once
            before, seconds_before, _ = measure(lambda: UNBRIDGED[method](hu, geometry), trace=False)
            lungs, seconds_bridge, _ = measure(lambda: bridge_pleural_indentations(before, hu, geometry), trace=False)
            seconds = seconds_before + seconds_bridge
            u_before, u_after = _union(before, hu.shape), _union(lungs, hu.shape)
            inside = float((u_after & tumour).sum() / tumour.sum())
            row = {"method": method, "case": case, "held out": held_out, "tumour (mL)": float(tumour.sum() * geometry.voxel_volume_ml),
                   "inside without bridging": float((u_before & tumour).sum() / tumour.sum()), "inside": inside,
                   "time (s)": seconds}
            if truth is not None:
                outside = ~_union(truth, hu.shape)
                row["added outside true lungs (mL)"] = float((u_after & ~u_before & outside).sum() * geometry.voxel_volume_ml)
                row["Dice right"] = dice(lungs.get("right lung", np.zeros(1, bool)), truth["right lung"])
                row["Dice left"] = dice(lungs.get("left lung", np.zeros(1, bool)), truth["left lung"])
                row["Dice right without"] = dice(before.get("right lung", np.zeros(1, bool)), truth["right lung"])
                row["Dice left without"] = dice(before.get("left lung", np.zeros(1, bool)), truth["left lung"])
            target = next(v for k, v in PLEURAL_TARGETS.items() if case.startswith(k))
            row["target"] = f">= {target:.2f}"
            if inside < target:
                misses.append(f"{method} on {case}: {inside:.3f} < {target:.2f}")
            rows.append(row)
    print("\n## Lungs that keep juxta-pleural tumours (share of the tumour inside the lung segments)\n")
    print(table(rows, ["method", "case", "held out", "tumour (mL)", "inside without bridging", "inside", "target",
                       "added outside true lungs (mL)", "Dice right without", "Dice right", "Dice left without",
                       "Dice left", "time (s)"]))
    print("\nTargets missed: " + ("; ".join(misses) if misses else "none"))


if __name__ == "__main__":
    whole_volume()
    print()
    peers()
    large_volume()
    pleural()
