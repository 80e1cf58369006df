"""make bench: the deep tumour segmenters beside GK, from the same seed, on the same cases.

Cases (those of bench_tumor): lung1, LIDC-IDRI-0001 (>= 2 readers), the IBSI GTV (lungs: the
lung cavity), and synthetic chests of every tumour kind (generator seeds 11, 23, 37, which no
training uses). Leave-one-out: a real case is segmented by the model trained without it
(``<model>-without-lung1``, ``-without-lidc``); the IBSI crop and the synthetic cases are never
trained on, so the shipped model segments them. The ablation (no ConvLSTM) was trained on
every trainable case, so it is scored only where it is held out (IBSI and synthetic).

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
from LungTumorReconLib.evaluation import compare_masks
from LungTumorReconLib.model_registry import load_model, registry
from LungTumorReconLib.tumor_clustering import TumorClusterParameters, segment_tumor_at_seed

HELD_OUT_MODEL = {"lung1": "-without-lung1", "LIDC-0001 (>=2 readers)": "-without-lidc"}
DEEP = {  # method label -> (registry model, whether it has leave-one-out folds, config overrides)
    "r3d-dense-unet": ("r3d-dense-unet", True, {}),
    "r3d-dense-unet paper dilation": ("r3d-dense-unet", True, {"dilation_radius": 3}),  # the paper's 7x7 disk
    "r3d-dense-unet no-convlstm": ("r3d-dense-unet-no-convlstm", False, {}),
}


def model_for(method: str, case: str) -> str | None:
    """The registry model that never saw ``case`` (None: there is none)."""
    name, has_folds, _ = DEEP[method]
    if case in HELD_OUT_MODEL:
        return name + HELD_OUT_MODEL[case] if has_folds else None
    return name


def main() -> None:
    available = registry()
    deep = {m: v for m, v in DEEP.items() if v[0] in available}
    models = {}
    for method, (name, _, overrides) in deep.items():
        for fold in [name, *(name + suffix for suffix in HELD_OUT_MODEL.values())]:
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
        s = compare_masks(result.mask, truth, spacing)
        rows.append({"case": name, "method": "gk", "model": "-", "Dice": s["dice"], "HD95 (mm)": s["hd95_mm"],
                     "time (s)": seconds, "peak (MB)": peak})
        for method in deep:
            model_name = model_for(method, name)
            if model_name is None or (method, model_name) not in models:
                continue
            model = models[(method, model_name)]
            result, seconds, peak = measure(lambda: segment_tumor_deep(model, hu, geometry, [seed], lungs))
            s = compare_masks(result.mask, truth, spacing)
            rows.append({"case": name, "method": method, "model": model_name, "Dice": s["dice"],
                         "HD95 (mm)": s["hd95_mm"], "time (s)": seconds, "peak (MB)": peak})
    gk = {r["case"]: r for r in rows if r["method"] == "gk"}
    for r in rows:
        r["Dice ratio vs GK"] = r["Dice"] / max(gk[r["case"]]["Dice"], 1e-9)
    real = [r for r in rows if not r["case"].startswith("synthetic")]
    print("## Deep tumour segmenters beside GK, real cases, from the same seed (leave-one-out models)\n")
    print(table(real, ["case", "method", "model", "Dice", "HD95 (mm)", "Dice ratio vs GK", "time (s)", "peak (MB)"]))

    summary = []
    for kind in sorted({r["case"].split(" #")[0] for r in rows if r["case"].startswith("synthetic")}):
        for method in ["gk", *deep]:
            sel = [r for r in rows if r["case"].split(" #")[0] == kind and r["method"] == method]
            summary.append({"kind": kind.removeprefix("synthetic "), "method": method, "cases": len(sel),
                            "mean Dice": float(np.mean([r["Dice"] for r in sel])),
                            "min Dice": float(np.min([r["Dice"] for r in sel])),
                            "mean HD95 (mm)": float(np.mean([r["HD95 (mm)"] for r in sel])),
                            "mean time (s)": float(np.mean([r["time (s)"] for r in sel]))})
    print(f"\n## Synthetic tumours by kind (generator seeds {', '.join(map(str, SYNTHETIC_SEEDS))}), from the same seed\n")
    print(table(summary, ["kind", "method", "cases", "mean Dice", "min Dice", "mean HD95 (mm)", "mean time (s)"]))

    print("\n## Models: parameters, and an unseeded run over the lungs of a 512 x 512 x 100 CT (2 CPU cores)\n")
    from LungTumorReconLib.synthetic_thorax import make_thorax

    big = make_thorax(size=(512, 512, 100), spacing=(0.7, 0.7, 3.0), tumors=("solid", "juxta-pleural"), seed=9001)
    lungs = big.labels["right lung"] | big.labels["left lung"]
    sizes = []
    for method, (name, _, overrides) in deep.items():
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
