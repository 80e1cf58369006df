"""The pipeline: read the CT and seeds, segment the lungs, find the tumour, reconstruct it.

Front ends (Slicer module, web app, CLI) call :func:`run_pipeline` and then hand the result
to :mod:`output_folder` or to the scene; nothing here imports a GUI or ``slicer``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from LungTumorReconLib.dicom.masks import is_dicom_object, read_dicom_segments
from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.io.ct import CTVolume, read_ct, read_label_on_grid
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR, Seed, check_seeds_in_volume, read_seeds
from LungTumorReconLib.io.segmentation import read_segments
from LungTumorReconLib.lungs.correction import LungCorrection, apply_lung_correction, read_lung_correction
from LungTumorReconLib.lungs.snake import SnakeLungParameters, segment_lungs_snake
from LungTumorReconLib.lungs.threshold import ThresholdLungParameters, segment_lungs_threshold
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.events import Progress, ProgressEvent, Step, ignore_progress
from LungTumorReconLib.pipeline.memory import check_memory
from LungTumorReconLib.pipeline.options import PipelineOptions, resolved_tumor
from LungTumorReconLib.tumor.clustering import (
    TumorClusterParameters,
    lung_cavity,
    segment_tumor_at_seed,
    tumor_candidates,
)
from LungTumorReconLib.tumor.measurements import TumorMeasurement, measure_tumor, split_tumors


@dataclass
class PipelineResult:
    ct: CTVolume
    seeds: list[Seed]
    segments: dict[str, np.ndarray]  # name -> (k, j, i) bool, in output order
    tumors: list[TumorMeasurement]
    surface_lps: object | None  # vtkPolyData of the tumour model, or None
    methods: dict[str, dict]
    device: str
    timings_s: dict[str, float] = field(default_factory=dict)
    heterogeneity: np.ndarray | None = None  # float32 (k, j, i): clustering membership, or LNHG's nodule image
    candidates: list[dict] = field(default_factory=list)  # automatic tumour candidates, best first

    @property
    def warnings(self) -> list[str]:
        return self.ct.warnings


@contextmanager
def _about_option(option: str | None):
    """An InputError raised inside is about ``option`` (a file the user gave for it)."""
    try:
        yield
    except InputError as exc:
        if option is None or exc.option is not None:
            raise
        raise InputError(exc.message, exc.path, option=option) from None


def check_options(options: PipelineOptions) -> str:
    """Refuse unknown or unbuilt methods, a missing device or a misplaced option; return the device.

    Fills in ``options.tumor`` when it was left to the default.
    """
    options.tumor = resolved_tumor(options)
    methods.check_available("lungs", options.lungs)
    methods.check_available("tumor", options.tumor)
    methods.check_available("recon", options.recon)
    if options.tumor_mask_path is not None and options.tumor != "none":
        raise UnavailableError(f"give either a tumour mask or the tumour method {options.tumor}, not both",
                               option="tumor_mask_path")
    if options.weights is not None and options.tumor not in methods.DEEP_TUMOR_METHODS:
        raise UnavailableError("only the deep tumour methods use a weights file", option="weights")
    if options.tumor in methods.DEEP_TUMOR_METHODS:
        from LungTumorReconLib.networks.registry import load_model

        with _about_option("weights" if options.weights is not None else None):  # missing or bad: refused now
            load_model(methods.DEEP_TUMOR_MODELS[options.tumor], weights=options.weights)
        if options.tumor == "lnhg":
            from LungTumorReconLib.tumor.lnhg import DETECTOR_MODEL

            load_model(DETECTOR_MODEL)
    if options.lungs in methods.DEEP_LUNG_METHODS or options.tumor == "resunet":
        from LungTumorReconLib.lungs.resunet import LUNG_MODEL
        from LungTumorReconLib.networks.registry import load_model

        load_model(LUNG_MODEL)  # the organ stage's weights: missing or altered is refused now
    if options.lung_correction is not None and options.lungs == "none" and options.lungs_from is None:
        raise UnavailableError("a lung correction needs lungs: choose a lung method, or start from a segmentation's lungs",
                               option="lung_correction")
    if options.recon_weights is not None:
        if options.recon != "gan":
            raise UnavailableError("only the GAN reconstruction (gan) uses reconstruction weights", option="recon_weights")
        from LungTumorReconLib.networks.registry import load_model

        with _about_option("recon_weights"):  # refuse a bad file before any work
            load_model("slice-lstm-gan", weights=options.recon_weights)
    needs_torch = (options.tumor in methods.DEEP_TUMOR_METHODS or options.lungs in methods.DEEP_LUNG_METHODS
                   or options.recon == "gan")
    return methods.resolve_device(options.device, needs_torch=needs_torch)


@dataclass
class Inputs:
    ct: CTVolume
    seeds: list[Seed] = field(default_factory=list)
    tumor_mask: np.ndarray | None = None
    lungs_from: dict[str, np.ndarray] | None = None  # segments of --lungs-from, on the CT grid
    correction: LungCorrection | None = None


def load_inputs(ct_path: str | Path, options: PipelineOptions) -> Inputs:
    """Read and check every input; raises InputError before anything is computed."""
    ct = read_ct(ct_path)
    inputs = Inputs(ct=ct)
    if options.seeds_path is not None:
        inputs.seeds = read_seeds(options.seeds_path)
        check_seeds_in_volume(inputs.seeds, ct.geometry, options.seeds_path)
    dicom_tumor = options.tumor_mask_path is not None and is_dicom_object(options.tumor_mask_path)
    dicom_lungs = options.lungs_from is not None and is_dicom_object(options.lungs_from)
    if options.roi is not None and not (dicom_tumor or dicom_lungs):
        raise UnavailableError("an ROI name needs a DICOM SEG or RTSTRUCT as the tumour mask or the lungs' "
                               "segmentation", option="roi")
    if dicom_tumor:
        inputs.tumor_mask = read_dicom_segments(options.tumor_mask_path, ct, options.roi, tumor_only=True)[TUMOR]
    elif options.tumor_mask_path is not None:
        inputs.tumor_mask = read_label_on_grid(options.tumor_mask_path, ct.geometry)
    if options.lungs_from is not None:
        if dicom_lungs:
            segments = read_dicom_segments(options.lungs_from, ct, None if dicom_tumor else options.roi)
        else:
            segments, _ = read_segments(options.lungs_from, ct.geometry)
        if not any(segments.get(name, np.zeros(1)).any() for name in (RIGHT_LUNG, LEFT_LUNG)):
            raise InputError("has no 'right lung' or 'left lung' segment", options.lungs_from)
        inputs.lungs_from = segments
    if options.lung_correction is not None:
        known = {k: v for k, v in (inputs.lungs_from or {}).items() if k in (RIGHT_LUNG, LEFT_LUNG)}
        inputs.correction = read_lung_correction(options.lung_correction, ct.geometry, known)
    return inputs


def run_pipeline(ct_path: str | Path, options: PipelineOptions, progress: Progress | None = None) -> PipelineResult:
    progress = progress or ignore_progress
    t0 = time.perf_counter()
    device = check_options(options)
    progress(ProgressEvent(Step.READ, f"reading {ct_path}"))
    inputs = load_inputs(ct_path, options)
    timings = {"read": time.perf_counter() - t0}
    return run_on_volume(
        inputs.ct,
        inputs.seeds,
        options,
        device,
        tumor_mask=inputs.tumor_mask,
        lungs_from=inputs.lungs_from,
        correction=inputs.correction,
        progress=progress,
        timings=timings,
    )


def run_on_volume(
    ct: CTVolume,
    seeds: list[Seed],
    options: PipelineOptions,
    device: str,
    tumor_mask: np.ndarray | None = None,
    lungs_from: dict[str, np.ndarray] | None = None,
    correction: LungCorrection | None = None,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> PipelineResult:
    """The computing stages on an already-read CT (the Slicer module enters here).

    Args:
        ct: the CT as read (its warnings collect what the stages notice).
        seeds: tumour and lung seeds, in LPS.
        options: the methods; ``check_options`` has resolved ``device`` from them.
        tumor_mask: a tumour given as a mask (no tumour method runs).
        lungs_from: segments to start from instead of a lung method (a tumour among them is kept).
        correction: one lung's corrected slice, re-propagated through the CT.
        progress: typed progress events, one as each step starts.
        timings: seconds already spent (reading), extended here.

    Returns:
        The segments, measurements, surface and what ran, as a :class:`PipelineResult`.
    """
    progress = progress or ignore_progress
    timings = dict(timings or {})
    used: dict[str, dict] = {}
    if options.memory_check:  # before any work: a clear error instead of the kernel's OOM killer
        check_memory(ct.array.shape, "none" if lungs_from is not None else options.lungs, resolved_tumor(options),
                     options.recon, seeded=any(s.label == TUMOR for s in seeds))

    t = time.perf_counter()
    lungs, used["lungs"] = _lung_stage(ct, seeds, options, device, lungs_from, correction, progress)
    segments: dict[str, np.ndarray] = {name: lungs[name] for name in (RIGHT_LUNG, LEFT_LUNG) if name in lungs}
    timings["lungs"] = time.perf_counter() - t

    t = time.perf_counter()
    tumor_from_segmentation = False
    if lungs_from is not None and tumor_mask is None and options.tumor == "none" and lungs_from.get(
            TUMOR, np.zeros(1, bool)).any():
        tumor_mask, tumor_from_segmentation = lungs_from[TUMOR], True  # other segments stay as they were
    if tumor_mask is None and options.tumor not in (None, "none"):
        check_tumor_seeds_near_lungs(seeds, lungs, ct.geometry, options.seeds_path)
    tumor_mask, heterogeneity, candidates, used["tumor"] = _tumor_stage(
        ct, seeds, lungs, options, device, tumor_mask, tumor_from_segmentation, progress)
    tumors: list[TumorMeasurement] = []
    if tumor_mask is not None and tumor_mask.any():
        segments[TUMOR] = tumor_mask
        for seed, mask in split_tumors(tumor_mask, ct.geometry, seeds):
            tumors.append(measure_tumor(mask, ct.array, ct.geometry, seed))
    timings["tumor"] = time.perf_counter() - t

    t = time.perf_counter()
    surface, used["recon"] = _recon_stage(ct, segments, options, device, progress)
    timings["recon"] = time.perf_counter() - t
    return PipelineResult(ct=ct, seeds=seeds, segments=segments, tumors=tumors, surface_lps=surface, methods=used,
                          device=device, timings_s=timings, heterogeneity=heterogeneity, candidates=candidates)


def _lung_stage(ct: CTVolume, seeds: list[Seed], options: PipelineOptions, device: str,
                lungs_from: dict[str, np.ndarray] | None, correction: LungCorrection | None,
                progress: Progress) -> tuple[dict[str, np.ndarray], dict]:
    """The lungs (computed, or the given ones), corrected when asked; and what ran."""
    lungs: dict[str, np.ndarray] = {}
    if lungs_from is not None:
        lungs = {name: lungs_from[name] for name in (RIGHT_LUNG, LEFT_LUNG) if name in lungs_from}
        used = {"name": "from-file", "parameters": {"file": str(options.lungs_from or "")}}
    elif options.lungs == "snake":
        progress(ProgressEvent(Step.LUNGS, "segmenting the lungs (Viterbi snake, slice to slice)"))
        snake_params = SnakeLungParameters()
        lungs = segment_lungs_snake(ct.array, ct.geometry, seeds, snake_params)
        used = {"name": "snake", "parameters": snake_params.as_dict()}
    elif options.lungs == "threshold":
        progress(ProgressEvent(Step.LUNGS, "segmenting the lungs (threshold)"))
        params = ThresholdLungParameters()
        lungs = segment_lungs_threshold(ct.array, ct.geometry, params)
        used = {"name": "threshold", "parameters": params.as_dict()}
    elif options.lungs == "resunet":
        progress(ProgressEvent(Step.LUNGS, f"segmenting the lungs (ResUNet organ stage on {device})"))
        lungs, used = _resunet_lungs(ct, device)
    else:
        used = {"name": "none", "parameters": {}}
    if correction is not None:
        progress(ProgressEvent(Step.CORRECTION,
                               f"re-propagating the {correction.lung} from the corrected slice {correction.k + 1}"))
        lungs = apply_lung_correction(ct.array, ct.geometry, lungs, correction)
        used["correction"] = {"file": str(options.lung_correction or ""), "lung": correction.lung,
                              "slice": correction.k}
    if used["name"] != "none" and not any(m.any() for m in lungs.values()):
        ct.warnings.append(f"no lung found by the {used['name']} method")
    return lungs, used


def _tumor_stage(ct: CTVolume, seeds: list[Seed], lungs: dict[str, np.ndarray], options: PipelineOptions,
                 device: str, tumor_mask: np.ndarray | None, from_segmentation: bool, progress: Progress):
    """The tumour mask (given, or by the tumour method), its heterogeneity map, the automatic
    candidates and what ran."""
    heterogeneity, candidates = None, []
    if from_segmentation:
        used = {"name": "from-file", "parameters": {"file": str(options.lungs_from or "")}}
    elif tumor_mask is not None:
        progress(ProgressEvent(Step.TUMOR, "measuring the tumour from the given mask"))
        if not tumor_mask.any():
            ct.warnings.append("the tumour mask is empty")
        used = {"name": "mask", "parameters": {"file": str(options.tumor_mask_path or "")}}
    elif options.tumor in methods.CLUSTER_TUMOR_METHODS:
        progress(ProgressEvent(Step.TUMOR, f"segmenting the tumour ({options.tumor} clustering)"))
        tumor_mask, heterogeneity, candidates, params = _cluster_tumours(ct, seeds, lungs, options.tumor,
                                                                        options.tumor_per_slice)
        used = {"name": options.tumor, "parameters": params.as_dict()}
    elif options.tumor in methods.DEEP_TUMOR_METHODS:
        progress(ProgressEvent(Step.TUMOR, f"segmenting the tumour ({options.tumor} network on {device})"))
        tumor_mask, heterogeneity, used = _deep_tumours(ct, seeds, lungs, options, device, progress)
    else:
        used = {"name": options.tumor, "parameters": {}}
    return tumor_mask, heterogeneity, candidates, used


def _recon_stage(ct: CTVolume, segments: dict[str, np.ndarray], options: PipelineOptions, device: str,
                 progress: Progress) -> tuple[object | None, dict]:
    """The tumour's surface (LPS vtkPolyData) by the reconstruction method, and what ran."""
    if options.recon == "none" or TUMOR not in segments:
        return None, {"name": options.recon if TUMOR in segments else "none", "parameters": {}}
    progress(ProgressEvent(Step.RECON, f"reconstructing the tumour surface ({options.recon})"))
    from LungTumorReconLib.surface.reconstruction import RECON_PARAMETERS, reconstruct_surface

    surface = reconstruct_surface(options.recon, segments[TUMOR], ct.geometry, ct.array, device,
                                  weights=options.recon_weights)
    parameters = dict(RECON_PARAMETERS[options.recon])
    if options.recon_weights is not None:
        parameters["weights"] = str(options.recon_weights)
    return surface, {"name": options.recon, "parameters": parameters}


SEED_MAX_OUTSIDE_LUNGS_MM = 15.0  # juxta-pleural tumours lie against the lungs, not 2 cm away


def check_tumor_seeds_near_lungs(seeds: list[Seed], lungs: dict[str, np.ndarray], geometry,
                                 seeds_path: Path | None = None) -> None:
    """Refuse a tumour seed outside the lungs: clustering or a network started there segments
    whatever tissue it is in (a 313 mL "tumour" from a seed in the sample's mediastinum).

    Inside means within a lung's convex hull on the seed's axial slice (a large tumour against
    the chest wall indents the lung but stays in its hull) or within SEED_MAX_OUTSIDE_LUNGS_MM
    of a lung voxel. Without lungs (--lungs none) there is nothing to check against."""
    from LungTumorReconLib.tumor.clustering import hull_per_lung_and_slice

    union = _lung_union(lungs)
    if union is None or not union.any():
        return
    labels = np.zeros(union.shape, dtype=np.int32)
    for index, mask in enumerate(lungs.values(), start=1):
        labels[mask] = index
    spacing_kji = np.asarray(geometry.spacing[::-1])
    reach = np.ceil(SEED_MAX_OUTSIDE_LUNGS_MM / spacing_kji).astype(int)
    for seed in seeds:
        if seed.label != TUMOR:
            continue
        kji = np.array(geometry.nearest_kji(np.asarray(seed.lps)))
        k = int(kji[0])
        hull = hull_per_lung_and_slice(labels, (slice(k, k + 1), slice(0, union.shape[1]), slice(0, union.shape[2])))
        if hull[0, kji[1], kji[2]]:
            continue
        lo, hi = np.maximum(kji - reach, 0), np.minimum(kji + reach + 1, union.shape)
        near = np.argwhere(union[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]) + lo
        distance = np.sqrt((((near - kji) * spacing_kji) ** 2).sum(axis=1)).min() if len(near) else np.inf
        if distance > SEED_MAX_OUTSIDE_LUNGS_MM:
            x, y, z = seed.lps
            raise InputError(f"the tumor seed at LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm lies outside the lungs "
                             f"(more than {SEED_MAX_OUTSIDE_LUNGS_MM:.0f} mm from them); place it on the lung tumour",
                             seeds_path)


def _lung_union(lungs: dict[str, np.ndarray]) -> np.ndarray | None:
    """Both lungs in one mask (None without any lung segment)."""
    union = None
    for mask in lungs.values():
        union = mask.copy() if union is None else union | mask
    return union


def _tumor_seeds_kji(seeds: list[Seed], geometry) -> list[tuple[int, int, int]]:
    return [geometry.nearest_kji(np.asarray(s.lps)) for s in seeds if s.label == TUMOR]


def _resunet_lungs(ct: CTVolume, device: str) -> tuple[dict[str, np.ndarray], dict]:
    """Seed paper 003's organ stage on the lungs, and what the report records of it."""
    from LungTumorReconLib.lungs.resunet import LUNG_MODEL, segment_lungs_resunet
    from LungTumorReconLib.networks.registry import load_model, registry

    model = load_model(LUNG_MODEL, device=device)
    lungs = segment_lungs_resunet(ct.array, ct.geometry, model, device)
    config = model.config
    return lungs, {"name": "resunet", "parameters": {"model": LUNG_MODEL, "weights": registry()[LUNG_MODEL]["weights"],
                                                     "threshold": config.threshold, "pixel_mm": config.pixel_mm,
                                                     "hu_window": list(config.hu_window)}}


def _deep_tumours(ct: CTVolume, seeds: list[Seed], lungs: dict[str, np.ndarray], options: PipelineOptions, device: str,
                  progress: Progress | None = None) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    """A deep segmenter's tumours, around each ``tumor`` seed or over the lungs without seeds,
    and LNHG's heterogeneity image (None for the other models).

    ``--tumor resunet`` without a seed is seed paper 003's second stage: its region is the
    organ stage's lungs (``--lungs resunet``'s, or computed here when another lung method ran)."""
    from LungTumorReconLib.networks.registry import load_model, registry
    from LungTumorReconLib.tumor.deep import (
        FIRST_SEED_BOX_MM,
        SEED_BOX_MM,
        segment_tumor_deep,
        segment_tumor_in_regions,
    )

    name = methods.DEEP_TUMOR_MODELS[options.tumor]
    model = load_model(name, device=device, weights=options.weights)
    g = ct.geometry
    starts = _tumor_seeds_kji(seeds, g)
    organ = "lungs"
    if options.tumor == "resunet" and not starts and options.lungs != "resunet":
        if progress is not None:
            progress(ProgressEvent(Step.TUMOR,
                                   f"segmenting the lungs for the tumour stage (ResUNet organ stage on {device})"))
        lungs, _ = _resunet_lungs(ct, device)
        organ = "ResUNet organ stage's lungs"
    lung_union = _lung_union(lungs)
    heterogeneity, extra = None, {}
    if options.tumor == "lnhg":  # the generator (model), the detector and their fusion
        from LungTumorReconLib.tumor.lnhg import DETECTOR_MODEL, region_segmenter

        rules: list[str] = []
        segment = region_segmenter(model, load_model(DETECTOR_MODEL, device=device), device, "fusion", rules)
        result = segment_tumor_in_regions(segment, ct.array, g, starts, lung_union)
        heterogeneity = np.where(result.mask, result.probability, 0.0).astype(np.float32)
        extra = {"detector": DETECTOR_MODEL, "fusion": rules}
    else:
        result = segment_tumor_deep(model, ct.array, g, starts, lung_union, device)
    if not result.mask.any():
        where = "near the tumor seed(s)" if starts else "in the lungs" if lung_union is not None else "in the CT"
        ct.warnings.append(f"the {options.tumor} network found no tumour {where}: no tumour segment written")
    config = model.config
    entry = registry()[name]
    shipped = entry.get("weights") or " + ".join(entry.get("members", []))  # an ensemble has members
    parameters = {"model": name, "weights": str(options.weights) if options.weights else shipped,
                  "threshold": config.threshold, "dilation_radius_px": config.dilation_radius,
                  "pixel_mm": config.pixel_mm, "window_slices": config.window_slices,
                  "region": f"seed boxes, half-sizes (k, j, i) mm {list(FIRST_SEED_BOX_MM)}, grown to "
                            f"{list(SEED_BOX_MM)} when the tumour reaches the edge" if starts else
                  f"{organ}' bounding box" if lung_union is not None else "whole CT"}
    parameters.update(extra)
    return (result.mask if result.mask.any() else None), heterogeneity, {"name": options.tumor, "parameters": parameters}


def _cluster_tumours(
    ct: CTVolume, seeds: list[Seed], lungs: dict[str, np.ndarray], method: str, per_slice: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None, list[dict], TumorClusterParameters]:
    """One tumour per ``tumor`` seed; without seeds, the best automatic candidate in the lungs."""
    params = TumorClusterParameters(per_slice=per_slice)
    g = ct.geometry
    lung_union = _lung_union(lungs)
    starts = _tumor_seeds_kji(seeds, g)
    listed: list[dict] = []
    region = lung_union
    if starts and (lung_union is None or not lung_union.any()):
        region = lung_cavity(ct.array, g)  # --lungs none: the region around the seed stays in the lung cavity
    if not starts:
        if lung_union is None or not lung_union.any():
            ct.warnings.append("no tumour seed and no lungs to search: no tumour segment written")
            return None, None, listed, params
        found = tumor_candidates(ct.array, g, lung_union)
        listed = [
            {
                "centroid_lps": [float(v) for v in g.kji_to_lps(np.array(c.centroid_kji))],
                "volume_ml": c.volume_ml,
                "roundness": c.sphericity_proxy,
                "elongation": c.elongation,
                "score": c.score,
            }
            for c in found
        ]
        if not found:
            ct.warnings.append("no tumour candidate found in the lungs: no tumour segment written")
            return None, None, listed, params
        starts = [found[0].centroid_kji]
    union = np.zeros(ct.array.shape, dtype=bool)
    heterogeneity = np.zeros(ct.array.shape, dtype=np.float32)
    for kji in starts:
        x, y, z = g.kji_to_lps(np.array(kji))
        where = f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        try:
            result = segment_tumor_at_seed(ct.array, g, kji, region, method, params)
        except InputError as exc:
            raise InputError(f"tumor seed at {where}: {exc}") from None
        if not result.mask.any():
            ct.warnings.append(f"no tumour found near the seed at {where}")
        union |= result.mask
        np.maximum(heterogeneity, result.membership, out=heterogeneity)
    return union, heterogeneity, listed, params
