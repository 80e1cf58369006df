"""make bench: the deep tumour segmenters beside GK, from the same seed, on the same cases.

Cases (those of bench_tumor): lung1, LIDC-IDRI-0001 (>= 2 readers), the IBSI GTV (lungs: the
lung cavity), and synthetic chests of every tumour kind (generator seeds 11, 23, 37, which no
training uses). Never scored on a case it saw: a model whose registry entry lists a real case
among its training data is replaced there by its fold trained without it
(``<model>-without-lung1``, ``-without-lidc``), or, without such a fold, not scored there.

Measures: Dice (3D), seed paper 004's Dice2D (mean per-slice Dice over the slices holding
tumour), mean surface distance (MSD) and HD95 in mm, time per tumour.

Also: each model's parameter count, and the time and peak memory of an unseeded run over the
lungs of a 512 x 512 x 100 CT (the issue's budget: 60 s and 8 GB on 2 CPU cores).
"""

from __future__ import annotations

import resource
from dataclasses import replace

import numpy as np
from bench_tumor import SYNTHETIC_SEEDS, _deepest, cases
from harness import measure, table

from LungTumorReconLib.deep_tumor import segment_tumor_deep
from LungTumorReconLib.evaluation import compare_masks, dice_2d
from LungTumorReconLib.model_registry import load_model, registry
from LungTumorReconLib.tumor_clustering import TumorClusterParameters, segment_tumor_at_seed

REAL_NAME = {"lung1": "lung1", "LIDC-0001 (>=2 readers)": "LIDC-IDRI-0001"}  # bench case -> training name
FOLD = {"lung1": "-without-lung1", "LIDC-IDRI-0001": "-without-lidc"}
DEEP = {  # method label -> (registry model, config overrides)
    "r3d-dense-unet": ("r3d-dense-unet", {}),
    "r3d-dense-unet paper dilation": ("r3d-dense-unet", {"dilation_radius": 3}),  # the paper's 7x7 disk
    "r3d-dense-unet no-convlstm": ("r3d-dense-unet-no-convlstm", {}),
    "dense-highres3dnet (ensemble)": ("dense-highres3dnet", {}),
    "dense-highres3dnet-v1": ("dense-highres3dnet-v1", {}),
    "dense-highres3dnet-v2": ("dense-highres3dnet-v2", {}),
    "dense-highres3dnet-v1 plain sampling": ("dense-highres3dnet-v1-plain-sampling", {}),  # no DDC / DUC
}


def model_for(method: str, case: str, available: dict) -> str | None:
    """The registry model of ``method`` that never saw ``case`` (None: there is none)."""
    name = DEEP[method][0]
    real = REAL_NAME.get(case)
    if real is None or real not in available[name].get("training", {}).get("real", []):
        return name
    fold = name + FOLD[real]
    return fold if fold in available else None


def scores(mask, truth, spacing) -> dict:
    s = compare_masks(mask, truth, spacing)
    return {"Dice": s["dice"], "Dice2D": dice_2d(mask, truth), "MSD (mm)": s["msd_mm"], "HD95 (mm)": s["hd95_mm"]}


def _mean(values) -> float | None:
    """The mean of the defined values (a distance is undefined for an empty mask); None if none."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def main() -> None:
    available = registry()
    deep = {m: v for m, v in DEEP.items() if v[0] in available}
    models = {}
    for method, (name, overrides) in deep.items():
        for fold in [name, *(name + suffix for suffix in FOLD.values())]:
            if fold in available:
                model = load_model(fold)
                model.config = replace(model.config, **overrides)
                models[(method, fold)] = model
    rows = []
    for name, hu, geometry, truth, lungs in cases():
        seed = _deepest(truth, geometry.spacing[::-1])
        spacing = tuple(geometry.spacing[::-1])
        result, seconds, peak = measure(lambda: segment_tumor_at_seed(hu, geometry, seed, lungs, "gk",
                                                                      TumorClusterParameters()))
        rows.append({"case": name, "method": "gk", "model": "-", **scores(result.mask, truth, spacing),
                     "time (s)": seconds, "peak (MB)": peak})
        for method in deep:
            model_name = model_for(method, name, available)
            if model_name is None or (method, model_name) not in models:
                continue
            model = models[(method, model_name)]
            # untraced: PyTorch's allocations escape tracemalloc anyway; the 512^3 run below gives the memory
            result, seconds, peak = measure(lambda: segment_tumor_deep(model, hu, geometry, [seed], lungs), trace=False)
            rows.append({"case": name, "method": method, "model": model_name, **scores(result.mask, truth, spacing),
                         "time (s)": seconds, "peak (MB)": peak})
    gk = {r["case"]: r for r in rows if r["method"] == "gk"}
    for r in rows:
        r["Dice ratio vs GK"] = r["Dice"] / max(gk[r["case"]]["Dice"], 1e-9)
    real = [r for r in rows if not r["case"].startswith("synthetic")]
    print("## Deep tumour segmenters beside GK, real cases, from the same seed (leave-one-out models)\n")
    print(table(real, ["case", "method", "model", "Dice", "Dice2D", "MSD (mm)", "HD95 (mm)", "Dice ratio vs GK",
                       "time (s)", "peak (MB)"]))

    summary = []
    for kind in sorted({r["case"].split(" #")[0] for r in rows if r["case"].startswith("synthetic")}):
        for method in ["gk", *deep]:
            sel = [r for r in rows if r["case"].split(" #")[0] == kind and r["method"] == method]
            summary.append({"kind": kind.removeprefix("synthetic "), "method": method, "cases": len(sel),
                            "mean Dice": float(np.mean([r["Dice"] for r in sel])),
                            "min Dice": float(np.min([r["Dice"] for r in sel])),
                            "mean Dice2D": _mean([r["Dice2D"] for r in sel]),
                            "mean MSD (mm)": _mean([r["MSD (mm)"] for r in sel]),
                            "mean HD95 (mm)": _mean([r["HD95 (mm)"] for r in sel]),
                            "mean time (s)": float(np.mean([r["time (s)"] for r in sel]))})
    print(f"\n## Synthetic tumours by kind (generator seeds {', '.join(map(str, SYNTHETIC_SEEDS))}), from the same seed\n")
    print(table(summary, ["kind", "method", "cases", "mean Dice", "min Dice", "mean Dice2D", "mean MSD (mm)",
                          "mean HD95 (mm)", "mean time (s)"]))

    print("\n## Models: parameters, and an unseeded run over the lungs of a 512 x 512 x 100 CT (2 CPU cores)\n")
    from LungTumorReconLib.synthetic_thorax import make_thorax

    big = make_thorax(size=(512, 512, 100), spacing=(0.7, 0.7, 3.0), tumors=("solid", "juxta-pleural"), seed=9001)
    lungs = big.labels["right lung"] | big.labels["left lung"]
    sizes = []
    for method, (name, overrides) in deep.items():
        if overrides:
            continue  # the same network as another row
        model = models[(method, name)]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result, seconds, peak = measure(lambda: segment_tumor_deep(model, big.ct, big.geometry, [], lungs))
        s = compare_masks(result.mask, big.labels["tumor"], tuple(big.geometry.spacing[::-1]))
        sizes.append({"method": method, "parameters": sum(p.numel() for p in model.parameters()),
                      "512x512x100 time (s)": seconds, "Dice (both tumours, no seed)": s["dice"],
                      "peak traced (MB)": peak,
                      "process max RSS (MB)": max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    print(table(sizes, ["method", "parameters", "512x512x100 time (s)", "Dice (both tumours, no seed)",
                        "peak traced (MB)", "process max RSS (MB)"]))


if __name__ == "__main__":
    main()
