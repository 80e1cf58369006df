"""make bench: the tumour's 3D reconstruction from thick slices (seed paper 000, Tables III and V).

Cases:
- synthetic: tumour shapes of each free-standing kind at 0.5 mm, cut into 5 mm slices with
  partial volume (:mod:`thick_slice_cases`); generator seeds the training never uses;
- real: LIDC-IDRI-0001's >= 2 readers consensus (2.5 -> 5 mm), the IBSI GTV (3 -> 6 mm) and
  the lung1 label (5 -> 10 mm), every second slice kept; the original label is the truth.

Each method's surface is voxelised on the truth's grid and scored there with MONAI: mean
symmetric surface distance (the paper's ED), HD and HD95 in mm; time per tumour.

Never scored on a case it saw: a GAN whose registry entry lists a real case among its
training data (``training.real``) is replaced there by its fold trained without it
(``<model>-without-lung1``, ``-without-lidc``), or, without such a fold, not scored there;
the per-case table names the model. The IBSI crop is never trained on.
"""

from __future__ import annotations

import functools

import numpy as np
from harness import DATA, measure, table

from LungTumorReconDev.synthetic_thorax import FREE_TUMOR_KINDS
from LungTumorReconDev.thick_slice_cases import decimate_label, synthetic_thick_case
from LungTumorReconLib.evaluation import compare_masks
from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.surface.marching_cubes import surface_to_mask
from LungTumorReconLib.surface.reconstruction import RECONSTRUCTIONS

BENCH_SEEDS = (9001, 9002)  # training uses seeds below 9000
REAL_NAME = {"LIDC-0001 2.5->5 mm": "LIDC-IDRI-0001", "lung1 5->10 mm": "lung1"}  # bench case -> training name
FOLD = {"lung1": "-without-lung1", "LIDC-IDRI-0001": "-without-lidc"}


def cases():
    out = [synthetic_thick_case(kind, seed) for seed in BENCH_SEEDS for kind in FREE_TUMOR_KINDS]
    for name, ct_path, label, threshold in (
        ("LIDC-0001 2.5->5 mm", DATA / "lidc_idri_0001" / "dicom",
         DATA / "lidc_idri_0001" / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", 1.5),
        ("IBSI GTV 3->6 mm", DATA / "ibsi_nsclc_crop" / "dicom", DATA / "ibsi_nsclc_crop" / "nifti" / "mask.nii.gz", 0.0),
        ("lung1 5->10 mm", DATA / "pyradiomics_lung1" / "lung1_image.nrrd",
         DATA / "pyradiomics_lung1" / "lung1_label.nrrd", 0.0),
    ):
        ct = read_ct(ct_path)
        truth = read_label_on_grid(label, ct.geometry, threshold=threshold)
        out.append(decimate_label(name, truth, ct.array, ct.geometry))
    return out


def slicer_closed_surface(mask, geometry, ct=None):
    """Slicer's own binary labelmap -> closed surface conversion (smoothing factor 0.5, its default)."""
    from LungTumorReconLib.mrml.scene import Scene

    scene = Scene()
    try:
        node = scene.set_segmentation({"tumor": mask}, geometry)
        return scene.closed_surfaces_lps(node)["tumor"]
    finally:
        scene.close()


def model_for(name: str, case: str, available: dict) -> str | None:
    """The registry model ``name``, or its fold that never saw ``case`` (None: there is none)."""
    real = REAL_NAME.get(case)
    if real is None or real not in available[name].get("training", {}).get("real", []):
        return name
    fold = name + FOLD[real]
    return fold if fold in available else None


def methods() -> dict:
    """Label -> surface function, or, for the GANs, label -> registry name (a fold per case)."""
    from LungTumorReconLib.networks.registry import registry
    from LungTumorReconLib.surface.shape_interpolation import interpolation_marching_cubes_surface

    out = {m: fn for m, fn in RECONSTRUCTIONS.items() if m != "gan"}
    # the ablation of interp-mc's cubic grid: phi sampled along k only, on the CT's pixels
    out["interp-mc slice grid"] = lambda mask, geometry, ct=None: interpolation_marching_cubes_surface(
        mask, geometry, isotropic=False)
    out["slicer"] = slicer_closed_surface
    for name, entry in registry().items():
        if entry.get("architecture") != "slice-lstm-gan" or name.endswith(tuple(FOLD.values())):
            continue  # the registry also holds the deep tumour segmenters; folds stand in per case
        out["gan" if name == "slice-lstm-gan" else "gan " + name.removeprefix("slice-lstm-gan-")] = name
    out["gan prior only"] = gan_prior_surface
    return out


@functools.lru_cache(maxsize=None)
def _gan(name: str):
    """A surface function of the registry's GAN ``name``, loaded once."""
    from LungTumorReconLib.networks.registry import load_model
    from LungTumorReconLib.surface.gan import gan_surface

    model = load_model(name)
    return lambda mask, geometry, ct=None: gan_surface(mask, geometry, ct, model=model)


def gan_prior_surface(mask, geometry, ct=None):
    """The ablation of the whole network: the zero level of the GAN's own prior, the
    slice-interpolated signed distance resampled (cubic) onto the GAN's grid, with no
    generator correction. What the ResNet, LSTM and generator add is the gap to this row."""
    from LungTumorReconLib.surface.gan import prepare_inputs
    from LungTumorReconLib.surface.marching_cubes import iso_surface

    inputs = prepare_inputs(mask, np.where(mask, 0.0, -850.0).astype(np.float32), geometry)
    return iso_surface(-inputs.volume[0], inputs.grid, 0.0)


def main() -> None:
    from LungTumorReconLib.networks.registry import registry

    rows, available = [], registry()
    recon = methods()
    for case in cases():
        for method, fn in recon.items():
            model = model_for(fn, case.name, available) if isinstance(fn, str) else None
            if isinstance(fn, str) and model is None:
                continue  # no model that never saw this case
            surface_fn = _gan(model) if model else fn
            surface, seconds, peak = measure(lambda: surface_fn(case.mask, case.geometry, case.ct))
            voxels = surface_to_mask(surface, case.truth_geometry)
            s = compare_masks(voxels, case.truth, tuple(case.truth_geometry.spacing[::-1]))
            rows.append({"case": case.name, "method": method, "model": model or "-", "mean dist (mm)": s["msd_mm"],
                         "HD95 (mm)": s["hd95_mm"], "HD (mm)": s["hd_mm"], "Dice": s["dice"], "time (s)": seconds,
                         "peak (MB)": peak})
    base = {r["case"]: r for r in rows if r["method"] == "mc"}
    for r in rows:
        r["mean dist ratio vs MC"] = r["mean dist (mm)"] / base[r["case"]]["mean dist (mm)"]
    print("## 3D reconstruction from thick slices, per case\n")
    print(table(rows, ["case", "method", "model", "mean dist (mm)", "mean dist ratio vs MC", "HD95 (mm)", "HD (mm)",
                       "Dice", "time (s)", "peak (MB)"]))
    summary = []
    for group, pick in (("synthetic", lambda n: "#" in n), ("real", lambda n: "#" not in n)):
        for method in recon:
            sel = [r for r in rows if r["method"] == method and pick(r["case"])]
            if not sel:
                continue
            summary.append({"cases": group, "method": method, "n": len(sel),
                            "mean dist (mm)": float(np.mean([r["mean dist (mm)"] for r in sel])),
                            "HD95 (mm)": float(np.mean([r["HD95 (mm)"] for r in sel])),
                            "HD (mm)": float(np.mean([r["HD (mm)"] for r in sel])),
                            "time (s)": float(np.mean([r["time (s)"] for r in sel]))})
        mc = [r for r in summary if r["cases"] == group and r["method"] == "mc"][0]
        for r in summary:
            if r["cases"] == group:
                r["mean dist ratio vs MC"] = r["mean dist (mm)"] / mc["mean dist (mm)"]
    print("\n## 3D reconstruction: means over the cases\n")
    print(table(summary, ["cases", "method", "n", "mean dist (mm)", "mean dist ratio vs MC", "HD95 (mm)", "HD (mm)",
                          "time (s)"]))


if __name__ == "__main__":
    main()
