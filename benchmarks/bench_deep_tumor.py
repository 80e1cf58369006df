"""make bench: the deep tumour segmenters beside GK, from the same seed, on the same cases.

Cases (those of bench_tumor): lung1, LIDC-IDRI-0001 (>= 2 readers), the IBSI GTV (lungs: the
lung cavity), and synthetic chests of every tumour kind (generator seeds 11, 23, 37, which no
training uses). Never scored on a case it saw: a model whose registry entry lists a real case
among its training data is replaced there by its fold trained without it
(``<model>-without-lung1``, ``-without-lidc``), or, without such a fold, not scored there.

Measures: Dice (3D), seed paper 004's Dice2D (mean per-slice Dice over the slices holding
tumour), mean surface distance (MSD) and HD95 in mm, seed paper 003's pixel accuracy (over the
box the networks see around the seed), IoU and true-positive rate, time per tumour.

Also: each model's parameter count, and the time and peak memory of an unseeded run over the
lungs of a 512 x 512 x 100 CT (the issue's budget: 60 s and 8 GB on 2 CPU cores); for the
two-stage ResUNet the lungs are its own organ stage's, and the time includes that stage.
"""

from __future__ import annotations

import functools
import resource
from dataclasses import replace

import numpy as np
from bench_tumor import SYNTHETIC_SEEDS, _deepest, cases
from harness import measure, table

from LungTumorReconLib.tumor.deep import SEED_BOX_MM, box_around, segment_tumor_deep, segment_tumor_in_regions
from LungTumorReconLib.evaluation import compare_masks, confusion_scores, detection_counts, dice_2d
from LungTumorReconLib.tumor.lnhg import region_segmenter
from LungTumorReconLib.lungs.resunet import LUNG_MODEL, segment_lungs_resunet
from LungTumorReconLib.networks.registry import load_model, registry
from LungTumorReconDev.synthetic_thorax import TUMOR_KINDS
from LungTumorReconLib.tumor.clustering import TumorClusterParameters, segment_tumor_at_seed

REAL_NAME = {"lung1": "lung1", "LIDC-0001 (>=2 readers)": "LIDC-IDRI-0001"}  # bench case -> training name
FOLD = {"lung1": "-without-lung1", "LIDC-IDRI-0001": "-without-lidc"}
DEEP = {  # method label -> (registry model, config overrides)
    "r3d-dense-unet": ("r3d-dense-unet", {}),
    "r3d-dense-unet paper dilation": ("r3d-dense-unet", {"dilation_radius": 3}),  # the paper's 7x7 disk
    "r3d-dense-unet no-convlstm": ("r3d-dense-unet-no-convlstm", {}),
    "dense-highres3dnet": ("dense-highres3dnet", {}),  # v1 on the real-like chests and the real cases
    "dense-highres3dnet v1+v2 (issue 20)": ("dense-highres3dnet-v1v2", {}),  # the paper's ensemble, synthetic only
    "dense-highres3dnet-v1": ("dense-highres3dnet-v1", {}),
    "dense-highres3dnet-v2": ("dense-highres3dnet-v2", {}),
    "dense-highres3dnet-v1 plain sampling": ("dense-highres3dnet-v1-plain-sampling", {}),  # no DDC / DUC
    "resunet": ("resunet-tumor", {}),  # seed paper 003's tumour stage (its organ stage: bench_lungs)
}


def model_for(method: str, case: str, available: dict) -> str | None:
    """The registry model of ``method`` that never saw ``case`` (None: there is none)."""
    name = DEEP[method][0]
    real = REAL_NAME.get(case)
    if real is None or real not in available[name].get("training", {}).get("real", []):
        return name
    fold = name + FOLD[real]
    return fold if fold in available else None


def scores(mask, truth, spacing, seed) -> dict:
    s = compare_masks(mask, truth, spacing)
    c = confusion_scores(mask, truth, box_around(seed, SEED_BOX_MM, spacing, truth.shape))
    return {"Dice": s["dice"], "Dice2D": dice_2d(mask, truth), "MSD (mm)": s["msd_mm"], "HD95 (mm)": s["hd95_mm"],
            "pixel acc.": c["pixel_accuracy"], "IoU": c["iou"], "TPR": c["true_positive_rate"]}


def _mean(values) -> float | None:
    """The mean of the defined values (a distance is undefined for an empty mask); None if none."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


LNHG = {  # method label -> (generator registry model, mode); all share the lnhg-detector branch
    "lnhg (fusion)": ("lnhg-generator", "fusion"),
    "lnhg generator alone": ("lnhg-generator", "generator"),
    "lnhg detector boxes alone": ("lnhg-generator", "detector"),
    "lnhg no-adversarial generator": ("lnhg-generator-no-adversarial", "generator"),
    "lnhg no-adversarial fusion": ("lnhg-generator-no-adversarial", "fusion"),
    "lnhg no-perceptual generator": ("lnhg-generator-no-perceptual", "generator"),
    "lnhg no-perceptual fusion": ("lnhg-generator-no-perceptual", "fusion"),
}
UNSEEDED = ("lung1", "LIDC-0001 (>=2 readers)", "IBSI GTV (--lungs none)", *(f"synthetic {k} #11" for k in TUMOR_KINDS))


@functools.cache
def organ_model():
    """The ResUNet organ stage, loaded once."""
    return load_model(LUNG_MODEL)


def organ_lungs(hu, geometry) -> np.ndarray:
    """Both lungs of the ResUNet organ stage in one mask."""
    union = np.zeros(hu.shape, bool)
    for mask in segment_lungs_resunet(hu, geometry, organ_model()).values():
        union |= mask
    return union


def lnhg_branches(available: dict):
    """(detector, {generator registry name: generator}), each loaded once; None without LNHG."""
    if "lnhg-detector" not in available:
        return None
    return load_model("lnhg-detector"), {name: load_model(name) for name, _ in LNHG.values() if name in available}


def lnhg_segmenters(detector, generators: dict) -> dict:
    """method label -> a function (hu, geometry, seeds, lungs) -> DeepTumorResult; the branches'
    outputs are shared between the labels (one cache), so only the first label of a generator
    pays for its run (the time column says so)."""
    cache: dict = {}
    out = {}
    for label, (name, mode) in LNHG.items():
        if name in generators:
            segment = region_segmenter(generators[name], detector, "cpu", mode, cache=cache)
            out[label] = (lambda hu, g, seeds, lungs, segment=segment: segment_tumor_in_regions(segment, hu, g, seeds, lungs))
    return out


def unseeded(all_cases, deep: dict, models: dict, lnhg: dict, available: dict) -> None:
    """Each deep model over the lungs without a seed: Dice, false-positive components and
    missed tumours per case (seed paper 002's reason for its second branch)."""
    rows = []
    for name, hu, geometry, truth, lungs in all_cases:
        if name not in UNSEEDED:
            continue
        organ = organ_lungs(hu, geometry) if "resunet" in deep else lungs  # the two-stage ResUNet's own lungs
        runs = {m: (lambda m=m: segment_tumor_deep(models[(m, model_for(m, name, available))], hu, geometry, [],
                                                   organ if m == "resunet" else lungs))
                for m, (_, overrides) in deep.items() if not overrides and (m, model_for(m, name, available)) in models}
        runs.update({m: (lambda fn=fn: fn(hu, geometry, [], lungs)) for m, fn in lnhg.items()})
        for method, run in runs.items():
            result, seconds, _ = measure(run, trace=False)
            counts = detection_counts(result.mask, truth)
            rows.append({"case": name, "method": method, "Dice": compare_masks(result.mask, truth, tuple(geometry.spacing[::-1]))["dice"],
                         "FP components": counts["false_positive_components"],
                         "FN tumours": counts["false_negative_tumours"], "time (s)": seconds})
    print("\n## Without a seed, over the lungs: false-positive components and missed tumours per case\n")
    print(table(rows, ["case", "method", "Dice", "FP components", "FN tumours", "time (s)"]))
    summary = []
    for group, real in (("real (3, held out)", True), ("synthetic #11 (6 kinds)", False)):
        for method in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r["method"] == method and r["case"].startswith("synthetic") != real]
            summary.append({"cases": group, "method": method, "mean Dice": float(np.mean([r["Dice"] for r in sel])),
                            "FP components per case": float(np.mean([r["FP components"] for r in sel])),
                            "FN tumours per case": float(np.mean([r["FN tumours"] for r in sel]))})
    print("\n## Without a seed, means\n")
    print(table(summary, ["cases", "method", "mean Dice", "FP components per case", "FN tumours per case"]))


def _models(available: dict, deep: dict) -> dict:
    """Every deep model and its leave-one-out folds, with the bench's config overrides."""
    models = {}
    for method, (name, overrides) in deep.items():
        for fold in [name, *(name + suffix for suffix in FOLD.values())]:
            if fold in available:
                model = load_model(fold)
                model.config = replace(model.config, **overrides)
                models[(method, fold)] = model
    return models


def _seeded_rows(all_cases, deep: dict, models: dict, lnhg: dict, available: dict) -> list[dict]:
    """Each case from its deepest voxel: GK, every deep segmenter and LNHG, scored."""
    rows = []
    for name, hu, geometry, truth, lungs in all_cases:
        seed = _deepest(truth, geometry.spacing[::-1])
        spacing = tuple(geometry.spacing[::-1])
        result, seconds, peak = measure(lambda: segment_tumor_at_seed(hu, geometry, seed, lungs, "gk",
                                                                      TumorClusterParameters()))
        rows.append({"case": name, "method": "gk", "model": "-", **scores(result.mask, truth, spacing, seed),
                     "time (s)": seconds, "peak (MB)": peak})
        for method in deep:
            model_name = model_for(method, name, available)
            if model_name is None or (method, model_name) not in models:
                continue
            model = models[(method, model_name)]
            # untraced: PyTorch's allocations escape tracemalloc anyway; the 512^3 run below gives the memory
            result, seconds, peak = measure(lambda: segment_tumor_deep(model, hu, geometry, [seed], lungs), trace=False)
            rows.append({"case": name, "method": method, "model": model_name, **scores(result.mask, truth, spacing, seed),
                         "time (s)": seconds, "peak (MB)": peak})
        for method, run in lnhg.items():  # trained on synthetic chests only: every real case is held out
            result, seconds, peak = measure(lambda: run(hu, geometry, [seed], lungs), trace=False)
            rows.append({"case": name, "method": method, "model": LNHG[method][0], **scores(result.mask, truth, spacing, seed),
                         "time (s)": seconds, "peak (MB)": peak})
    gk = {r["case"]: r for r in rows if r["method"] == "gk"}
    for r in rows:
        r["Dice ratio vs GK"] = r["Dice"] / max(gk[r["case"]]["Dice"], 1e-9)
    return rows


def _print_seeded(rows: list[dict], methods: list[str]) -> None:
    real = [r for r in rows if not r["case"].startswith("synthetic")]
    print("## Deep tumour segmenters beside GK, real cases, from the same seed (leave-one-out models)\n")
    print(table(real, ["case", "method", "model", "Dice", "Dice2D", "MSD (mm)", "HD95 (mm)", "Dice ratio vs GK",
                       "time (s)", "peak (MB)"]))
    print("\n## The same runs in seed paper 003's scores (pixel accuracy over the seed's box)\n")
    print(table(real, ["case", "method", "model", "pixel acc.", "IoU", "TPR"]))

    summary = []
    for kind in sorted({r["case"].split(" #")[0] for r in rows if r["case"].startswith("synthetic")}):
        for method in methods:
            sel = [r for r in rows if r["case"].split(" #")[0] == kind and r["method"] == method]
            summary.append({"kind": kind.removeprefix("synthetic "), "method": method, "cases": len(sel),
                            "mean Dice": float(np.mean([r["Dice"] for r in sel])),
                            "min Dice": float(np.min([r["Dice"] for r in sel])),
                            "mean Dice2D": _mean([r["Dice2D"] for r in sel]),
                            "mean MSD (mm)": _mean([r["MSD (mm)"] for r in sel]),
                            "mean HD95 (mm)": _mean([r["HD95 (mm)"] for r in sel]),
                            "mean pixel acc.": _mean([r["pixel acc."] for r in sel]),
                            "mean IoU": _mean([r["IoU"] for r in sel]), "mean TPR": _mean([r["TPR"] for r in sel]),
                            "mean time (s)": float(np.mean([r["time (s)"] for r in sel]))})
    print(f"\n## Synthetic tumours by kind (generator seeds {', '.join(map(str, SYNTHETIC_SEEDS))}), from the same seed\n")
    print(table(summary, ["kind", "method", "cases", "mean Dice", "min Dice", "mean Dice2D", "mean MSD (mm)",
                          "mean HD95 (mm)", "mean time (s)"]))
    print("\n## The same synthetic runs in seed paper 003's scores\n")
    print(table(summary, ["kind", "method", "cases", "mean pixel acc.", "mean IoU", "mean TPR"]))


def _model_sizes(deep: dict, models: dict, branches) -> None:
    """Each model's parameters, and an unseeded run over a 512 x 512 x 100 CT's lungs."""
    print("\n## Models: parameters, and an unseeded run over the lungs of a 512 x 512 x 100 CT (2 CPU cores)\n")
    from LungTumorReconDev.synthetic_thorax import make_thorax

    big = make_thorax(size=(512, 512, 100), spacing=(0.7, 0.7, 3.0), tumors=("solid", "juxta-pleural"), seed=9001)
    lungs = big.labels["right lung"] | big.labels["left lung"]
    sizes = []
    for method, (name, overrides) in deep.items():
        if overrides:
            continue  # the same network as another row
        model = models[(method, name)]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if name == "resunet-tumor":  # two stages: the organ stage's lungs, then the tumour stage
            def run(model=model):
                return segment_tumor_deep(model, big.ct, big.geometry, [], organ_lungs(big.ct, big.geometry))
        else:
            def run(model=model):
                return segment_tumor_deep(model, big.ct, big.geometry, [], lungs)
        result, seconds, peak = measure(run)
        s = compare_masks(result.mask, big.labels["tumor"], tuple(big.geometry.spacing[::-1]))
        sizes.append({"method": method, "parameters": sum(p.numel() for p in model.parameters()),
                      "512x512x100 time (s)": seconds, "Dice (both tumours, no seed)": s["dice"],
                      "peak traced (MB)": peak,
                      "process max RSS (MB)": max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    if branches and "lnhg-generator" in branches[1]:
        detector, generator = branches[0], branches[1]["lnhg-generator"]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        segment = region_segmenter(generator, detector, "cpu", "fusion")
        result, seconds, peak = measure(lambda: segment_tumor_in_regions(segment, big.ct, big.geometry, [], lungs))
        s = compare_masks(result.mask, big.labels["tumor"], tuple(big.geometry.spacing[::-1]))
        sizes.append({"method": "lnhg (fusion)",
                      "parameters": sum(p.numel() for m in (generator, detector) for p in m.parameters()),
                      "512x512x100 time (s)": seconds, "Dice (both tumours, no seed)": s["dice"], "peak traced (MB)": peak,
                      "process max RSS (MB)": max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    print(table(sizes, ["method", "parameters", "512x512x100 time (s)", "Dice (both tumours, no seed)",
                        "peak traced (MB)", "process max RSS (MB)"]))


def main() -> None:
    available = registry()
    deep = {m: v for m, v in DEEP.items() if v[0] in available}
    models = _models(available, deep)
    branches = lnhg_branches(available)
    lnhg = lnhg_segmenters(*branches) if branches else {}
    all_cases = cases()
    rows = _seeded_rows(all_cases, deep, models, lnhg, available)
    _print_seeded(rows, ["gk", *deep, *lnhg])
    unseeded(all_cases, deep, models, lnhg, available)
    _model_sizes(deep, models, branches)


if __name__ == "__main__":
    main()
