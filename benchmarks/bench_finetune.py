"""make bench: fine-tuning on a site's corrected cases (``lungtumorrecon finetune``), leave one out.

For each deep segmenter whose synthetic-only model is shipped (``<model>-synthetic``: trained on
synthetic chests only, so neither real case leaks in), and for each of lung1 and LIDC-IDRI-0001:
the other case is written as a site would save it (``finetune.cases.write_case``), the model is
fine-tuned on it with the command's defaults (:func:`finetune.training.finetune`), and the
left-out case is scored from ``CLICKS`` random clicks inside its reference, beside the model
before fine-tuning. The IBSI crop is never used (non-commercial licence).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from bench_tumor import cases, inside_clicks
from harness import DATA, table

from LungTumorReconDev.tumor_datasets import read_real_case
from LungTumorReconLib.evaluation import compare_masks
from LungTumorReconLib.finetune.cases import write_case
from LungTumorReconLib.finetune.training import finetune
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.networks.registry import load_model, registry
from LungTumorReconLib.tumor.deep import segment_tumor_deep

BASES = ("r3d-dense-unet-synthetic", "dense-highres3dnet-synthetic")
FOLDS = (("lung1", "LIDC-IDRI-0001"), ("LIDC-0001 (>=2 readers)", "lung1"))  # (scored bench case, fine-tuned on)
CLICKS = 5


def scored(model, case) -> float:
    name, hu, geometry, truth, lungs = case
    spacing = tuple(geometry.spacing[::-1])
    clicks = inside_clicks(truth, spacing, np.random.default_rng(22), n=CLICKS)
    return float(np.mean([compare_masks(segment_tumor_deep(model, hu, geometry, [c], lungs).mask, truth, spacing)["dice"]
                          for c in clicks]))


def main() -> None:
    available = registry()
    bench_cases = {c[0]: c for c in cases(synthetic_seeds=())}
    rows = []
    for base in (b for b in BASES if b in available):
        for scored_name, trained_on in FOLDS:
            site_case = read_real_case(trained_on, DATA)
            with tempfile.TemporaryDirectory() as tmp:
                folder, out = Path(tmp) / "cases", Path(tmp) / "model"
                write_case(folder, trained_on.replace(" ", "_"), CTVolume(site_case.hu, site_case.geometry),
                           site_case.mask)
                result = finetune(base, folder, out)
                before = scored(load_model(base), bench_cases[scored_name])
                after = scored(load_model(base, weights=result.weights), bench_cases[scored_name])
            rows.append({"model": base, "fine-tuned on": trained_on, "scored on": scored_name,
                         "Dice before": before, "Dice after": after, "gain": after - before,
                         "steps": result.summary.get("steps"), "kept": result.summary.get("kept"),
                         "seconds": result.summary.get("seconds")})
    print("## Fine-tuning on one corrected case, scored on the other (leave one out, "
          f"mean Dice over {CLICKS} clicks)\n")
    print(table(rows, ["model", "fine-tuned on", "scored on", "Dice before", "Dice after", "gain", "steps", "kept",
                       "seconds"]))


if __name__ == "__main__":
    main()
