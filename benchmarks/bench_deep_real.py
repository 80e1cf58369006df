"""make bench: the deep tumour segmenters on CT like the clinic's (issue 22's targets).

Cases:
- the real cases, each scored by a model that never saw it (``bench_deep_tumor.model_for``:
  the ``-without-lung1`` / ``-without-lidc`` folds), from ``CLICKS`` random clicks inside the
  reference (>= 2 mm from its edge), as clinicians click;
- synthetic chests drawn like the training data (:func:`tumor_datasets.real_like_synthetic_case`:
  tumours 4-100 mm, masses against the pleura with dense lung beside them, slices 0.6-5 mm,
  sharp and smooth kernels), generator seeds ``BENCH_SEEDS`` (no training or validation uses
  them); each tumour is scored alone (its share of the truth: the voxels nearer its centre than
  the other's), from one random click inside it.

Beside them GK from the same clicks. Without a seed: false-positive components per scan over
the synthetic chests' lungs. Targets: >= 0.70 Dice on every real case and no 0.00; synthetic,
each kind's mean >= 0.85 and worst >= 0.6, solid and juxta-pleural tumours of 15 mm and more
>= 0.80; <= 2 false positives per scan; seeded under 10 s.
"""

from __future__ import annotations

import functools

import numpy as np
from bench_deep_tumor import DEEP, model_for
from bench_tumor import cases, inside_clicks
from harness import measure, table

from LungTumorReconDev.tumor_datasets import real_like_synthetic_case
from LungTumorReconLib.evaluation import compare_masks, detection_counts
from LungTumorReconLib.networks.registry import load_model, registry
from LungTumorReconLib.tumor.clustering import TumorClusterParameters, segment_tumor_at_seed
from LungTumorReconLib.tumor.deep import segment_tumor_deep

BENCH_SEEDS = tuple(range(9101, 9111))
UNSEEDED_SEEDS = BENCH_SEEDS[:4]
CLICKS = 5
METHODS = ("r3d-dense-unet", "dense-highres3dnet", "resunet")


@functools.cache
def synthetic_case(seed: int):
    return real_like_synthetic_case(seed)


def tumour_truths(case) -> list[tuple[str, float, np.ndarray]]:
    """(kind, diameter mm, truth) per tumour: the case's truth split by the nearer tumour centre."""
    kji = np.argwhere(case.mask)
    lps = case.geometry.kji_to_lps(kji.astype(float))
    centres = np.array([t["centre_lps"] for t in case.tumors])
    nearest = np.argmin(np.linalg.norm(lps[:, None, :] - centres[None], axis=2), axis=1)
    out = []
    for n, tumour in enumerate(case.tumors):
        truth = np.zeros(case.mask.shape, bool)
        truth[tuple(kji[nearest == n].T)] = True
        if truth.sum() > 3:  # a tumour outside the field of view is not scored
            out.append((tumour["kind"], 2.0 * tumour["radius_mm"], truth))
    return out


def size_class(diameter: float) -> str:
    return "< 15 mm" if diameter < 15 else ("15-40 mm" if diameter <= 40 else "> 40 mm")


def run_method(method: str, model, hu, geometry, seed, lungs):
    if method == "gk":
        return segment_tumor_at_seed(hu, geometry, seed, lungs, "gk", TumorClusterParameters()).mask
    return segment_tumor_deep(model, hu, geometry, [seed], lungs).mask


def real_rows(available: dict, models: dict) -> list[dict]:
    rows = []
    for name, hu, geometry, truth, lungs in cases(synthetic_seeds=()):
        spacing = tuple(geometry.spacing[::-1])
        clicks = inside_clicks(truth, spacing, np.random.default_rng(22), n=CLICKS)
        for method in ("gk", *METHODS):
            model_name = "-" if method == "gk" else model_for(method, name, available)
            if model_name is None or (method != "gk" and model_name not in models):
                continue
            dice, times = [], []
            for seed in clicks:
                mask, seconds, _ = measure(lambda: run_method(method, models.get(model_name), hu, geometry, seed, lungs),
                                           trace=False)
                dice.append(compare_masks(mask, truth, spacing)["dice"])
                times.append(seconds)
            rows.append({"case": name, "method": method, "model": model_name, "mean Dice": float(np.mean(dice)),
                         "min Dice": float(np.min(dice)), "mean time (s)": float(np.mean(times))})
    return rows


def synthetic_rows(models: dict) -> list[dict]:
    rows = []
    for seed in BENCH_SEEDS:
        case = synthetic_case(seed)
        spacing = tuple(case.geometry.spacing[::-1])
        rng = np.random.default_rng(seed)
        for kind, diameter, truth in tumour_truths(case):
            click = inside_clicks(truth, spacing, rng, n=1)[0]
            for method in ("gk", *METHODS):
                model = models.get(DEEP[method][0]) if method != "gk" else None
                if method != "gk" and model is None:
                    continue
                mask, seconds, _ = measure(lambda: run_method(method, model, case.hu, case.geometry, click, case.lungs),
                                           trace=False)
                rows.append({"case": f"#{seed}", "slices (mm)": float(spacing[0]), "kind": kind,
                             "diameter (mm)": diameter, "size": size_class(diameter), "method": method,
                             "Dice": compare_masks(mask, truth, spacing)["dice"], "time (s)": seconds})
    return rows


def summarise(rows: list[dict], key: str) -> list[dict]:
    out = []
    for group in sorted({r[key] for r in rows}):
        for method in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r[key] == group and r["method"] == method]
            if sel:
                out.append({key: group, "method": method, "tumours": len(sel),
                            "mean Dice": float(np.mean([r["Dice"] for r in sel])),
                            "worst Dice": float(np.min([r["Dice"] for r in sel])),
                            "mean time (s)": float(np.mean([r["time (s)"] for r in sel]))})
    return out


def unseeded_rows(models: dict) -> list[dict]:
    rows = []
    for seed in UNSEEDED_SEEDS:
        case = synthetic_case(seed)
        for method in METHODS:
            model = models.get(DEEP[method][0])
            if model is None:
                continue
            result, seconds, _ = measure(lambda: segment_tumor_deep(model, case.hu, case.geometry, [], case.lungs),
                                         trace=False)
            counts = detection_counts(result.mask, case.mask)
            rows.append({"case": f"#{seed}", "method": method,
                         "FP components": counts["false_positive_components"],
                         "FN tumours": counts["false_negative_tumours"], "time (s)": seconds})
    return rows


def main() -> None:
    available = registry()
    names = {DEEP[m][0] for m in METHODS if DEEP[m][0] in available}
    names |= {n + suffix for n in names for suffix in ("-without-lung1", "-without-lidc") if n + suffix in available}
    models = {n: load_model(n) for n in sorted(names)}

    print("## Real cases from clicks as clinicians place them, each scored by a model that never saw it\n")
    print(table(real_rows(available, models), ["case", "method", "model", "mean Dice", "min Dice", "mean time (s)"]))
    rows = synthetic_rows(models)
    for r in rows:
        r["solid/juxta-pleural >= 15 mm"] = r["kind"] in ("solid", "juxta-pleural") and r["diameter (mm)"] >= 15
    print(f"\n## Synthetic chests like the clinic's (seeds {BENCH_SEEDS[0]}-{BENCH_SEEDS[-1]}), one click per tumour\n")
    print(table(rows, ["case", "slices (mm)", "kind", "diameter (mm)", "method", "Dice", "time (s)"]))
    print("\n### By kind\n")
    print(table(summarise(rows, "kind"), ["kind", "method", "tumours", "mean Dice", "worst Dice", "mean time (s)"]))
    print("\n### By size\n")
    print(table(summarise(rows, "size"), ["size", "method", "tumours", "mean Dice", "worst Dice", "mean time (s)"]))
    firm = [r for r in rows if r["solid/juxta-pleural >= 15 mm"]]
    print("\n### Solid and juxta-pleural tumours of 15 mm and more (target >= 0.80 each)\n")
    print(table(summarise(firm, "kind"), ["kind", "method", "tumours", "mean Dice", "worst Dice"]))
    unseeded = unseeded_rows(models)
    print(f"\n## Without a seed, over the lungs (seeds {UNSEEDED_SEEDS[0]}-{UNSEEDED_SEEDS[-1]}): false positives per scan\n")
    print(table(unseeded, ["case", "method", "FP components", "FN tumours", "time (s)"]))
    means = [{"method": m, "FP per scan": float(np.mean([r["FP components"] for r in unseeded if r["method"] == m])),
              "FN tumours per scan": float(np.mean([r["FN tumours"] for r in unseeded if r["method"] == m]))}
             for m in dict.fromkeys(r["method"] for r in unseeded)]
    print()
    print(table(means, ["method", "FP per scan", "FN tumours per scan"]))


if __name__ == "__main__":
    main()
