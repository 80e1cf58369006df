"""The follow-up pipeline: one patient's baseline and follow-up CT, each baseline tumour found
again at follow-up, and possible new lesions. Not for clinical use.

1. Read both CTs and refuse, before any heavy work, two CTs of different patients (DICOM
   PatientID) and a follow-up dated before its baseline (DICOM StudyDate, else AcquisitionDate,
   or the dates given).
2. Segment the lungs of both (the lung method of the options; ``threshold`` by default: as
   good as the snake on make bench's lungs, Dice 0.989 vs 0.988, in half the time and without
   seeds, and the registration needs only the two lung masks to agree).
3. The baseline tumours: from a segmentation, or segmented at each ``tumor`` seed with the
   tumour method exactly as ``run`` does (:func:`~LungTumorReconLib.pipeline.run.run_on_volume`).
   Each gets a tracking ID, "tumor 1", "tumor 2", ... in seed order.
4. Register the follow-up to the baseline on the lungs (:mod:`.registration`), map each
   tumour's baseline click to the follow-up and segment it there with the same method: the
   same start gives the most comparable segmentation. When that fails (the tumour shrank away
   from the click), or without a click (tumours from a segmentation), from the tumour's
   deepest point mapped (the one point that stays inside a shrinking tumour). A tumour not
   found there is gone. A follow-up ``tumor`` click near a tumour's mapped point replaces it.
5. Follow-up candidates away from every followed tumour, where the baseline had no such dense
   tissue, are possible new lesions (:mod:`.lesions`); they count for RECIST only when
   confirmed.

The growth numbers, Lung-RADS and RECIST are computed from the result by :mod:`.assessment`.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.followup.lesions import NEW_LESION_MARGIN_MM, NewLesion, find_new_lesions, radius_of_volume_mm
from LungTumorReconLib.io.ct import CTVolume, read_ct
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR, Seed, check_seeds_in_volume, read_seeds
from LungTumorReconLib.pipeline.events import Progress, ProgressEvent, Step, ignore_progress
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.run import check_options, run_on_volume
from LungTumorReconLib.tumor.measurements import TumorMeasurement, measure_tumor, split_tumors

DEFAULT_FOLLOWUP_LUNGS = "threshold"  # module docstring, step 2
NOT_FOR_CLINICAL_USE = "research software, not for clinical use"


@dataclass
class FollowupOptions:
    """What the follow-up runs, and with which files.

    Parameters
    ----------
    lungs, tumor, device, weights, tumor_per_slice, memory_check
        As in :class:`~LungTumorReconLib.pipeline.options.PipelineOptions`; ``lungs`` defaults
        to ``threshold`` (module docstring) and may not be ``none`` (the registration needs lungs).
    seeds_path : Path, optional
        Baseline markups: a ``tumor`` point on each tumour to follow (lung points for the snake).
    followup_seeds_path : Path, optional
        Follow-up markups: a ``tumor`` point on a followed tumour replaces its mapped point; one
        elsewhere confirms a new lesion there.
    baseline_seg : Path, optional
        The baseline tumours as a ``.seg.nrrd`` (segment ``tumor``, or ``tumor 1``, ``tumor 2``...),
        a label image, or a DICOM SEG / RTSTRUCT of the baseline series.
    dates : tuple of str, optional
        Baseline and follow-up dates, YYYY-MM-DD, instead of the DICOM dates.
    confirm_new : bool
        Every possible new lesion counts as new (RECIST progression).
    allow_different_patients : bool
        Do not refuse two CTs with different DICOM PatientIDs (phantoms, tests).
    deformable : bool
        Add the registration's deformable stage to its affine one.
    """

    lungs: str = DEFAULT_FOLLOWUP_LUNGS
    tumor: str | None = None
    device: str = "auto"
    weights: Path | None = None
    tumor_per_slice: bool = False
    memory_check: bool = True
    seeds_path: Path | None = None
    followup_seeds_path: Path | None = None
    baseline_seg: Path | None = None
    dates: tuple[str, str] | None = None
    confirm_new: bool = False
    allow_different_patients: bool = False
    deformable: bool = True

    def pipeline_options(self, tumor: str | None = None, memory_check: bool | None = None) -> PipelineOptions:
        """The run options of one segmentation (no surface: the follow-up measures masks)."""
        return PipelineOptions(lungs=self.lungs, tumor=self.tumor if tumor is None else tumor, recon="none",
                               device=self.device, weights=self.weights, tumor_per_slice=self.tumor_per_slice,
                               memory_check=self.memory_check if memory_check is None else memory_check)


@dataclass
class TrackedTumor:
    """One baseline tumour and what became of it at follow-up (masks on each CT's grid)."""

    tracking_id: str
    baseline: TumorMeasurement
    baseline_mask: np.ndarray
    followup_seed_lps: tuple[float, float, float] | None = None
    seed_source: str = "mapped baseline seed"
    fallback_lps: tuple[float, float, float] | None = None  # the deepest point mapped: the second try
    followup: TumorMeasurement | None = None
    followup_mask: np.ndarray | None = None
    note: str | None = None  # why it was not found

    @property
    def found(self) -> bool:
        return self.followup is not None


@dataclass
class FollowupResult:
    """What :func:`run_followup` found; :mod:`.assessment` turns it into numbers."""

    baseline_ct: CTVolume
    followup_ct: CTVolume
    dates: tuple[datetime.date | None, datetime.date | None]
    date_source: str | None
    patient_ids: tuple[str | None, str | None]
    registration: object  # registration.Registration
    baseline_lungs: dict[str, np.ndarray]
    followup_lungs: dict[str, np.ndarray]
    tumors: list[TrackedTumor]
    new_lesions: list[NewLesion]
    methods: dict
    device: str
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def days(self) -> int | None:
        """Days from the baseline to the follow-up; None without both dates."""
        if self.dates[0] is None or self.dates[1] is None:
            return None
        return (self.dates[1] - self.dates[0]).days


def run_followup(baseline_path: str | Path, followup_path: str | Path, options: FollowupOptions,
                 progress: Progress | None = None) -> FollowupResult:
    """Follow each baseline tumour into the follow-up CT, and list possible new lesions.

    Parameters
    ----------
    baseline_path, followup_path : str or Path
        The two CTs: DICOM folders or image files (anything ``run`` reads).
    options : FollowupOptions
        Methods and files.
    progress : callable, optional
        Receives a :class:`~LungTumorReconLib.pipeline.events.ProgressEvent` as each step starts.

    Returns
    -------
    FollowupResult
        Both CTs, dates, the registration, each tracked tumour's masks and measurements, and
        the possible new lesions.

    Raises
    ------
    InputError
        Before any heavy work: an unreadable CT or seeds file, CTs of two patients, a follow-up
        dated before its baseline, a bad date; later: a failed registration.
    UnavailableError
        A method, device or weights file that cannot be used.
    """
    progress = progress or ignore_progress
    timings: dict[str, float] = {}
    t = time.perf_counter()
    device, tumor_method = _check_options(options)
    inputs = _read_inputs(baseline_path, followup_path, options, progress)
    baseline, followup, seeds, given, warnings = (inputs.baseline, inputs.followup, inputs.seeds, inputs.given,
                                                  inputs.warnings)
    timings["read"] = time.perf_counter() - t

    t = time.perf_counter()
    progress(ProgressEvent(Step.LUNGS, "baseline: lungs and tumours"))
    base = run_on_volume(baseline, seeds, options.pipeline_options("none" if given else tumor_method), device,
                         tumor_mask=given[0] if given else None, lungs_from=given[1] if given else None,
                         progress=progress)
    base_lungs = {n: base.segments[n] for n in (RIGHT_LUNG, LEFT_LUNG) if n in base.segments}
    tumors = _baseline_tumors(base.segments.get(TUMOR), baseline, seeds, given[2] if given else None, warnings)
    timings["baseline"] = time.perf_counter() - t

    t = time.perf_counter()
    progress(ProgressEvent(Step.LUNGS, "follow-up: lungs"))
    fol = run_on_volume(followup, [s for s in inputs.followup_seeds if s.label != TUMOR],
                        options.pipeline_options("none"), device, progress=progress)
    fol_lungs = {n: fol.segments[n] for n in (RIGHT_LUNG, LEFT_LUNG) if n in fol.segments}
    timings["followup_lungs"] = time.perf_counter() - t

    t = time.perf_counter()
    registration = _register(baseline, base_lungs, followup, fol_lungs, options.deformable, progress)
    timings["registration"] = time.perf_counter() - t

    t = time.perf_counter()
    progress(ProgressEvent(Step.TUMOR, f"follow-up: finding the {len(tumors)} tumour(s) again ({tumor_method})"))
    new_seeds = _place_followup_seeds(tumors, registration, inputs.followup_seeds, baseline.geometry)
    segment = _Segmenter(followup, fol_lungs, options.pipeline_options(tumor_method, memory_check=False), device)
    for tumor in tumors:
        _find_at_followup(tumor, segment)
    timings["followup_tumors"] = time.perf_counter() - t

    t = time.perf_counter()
    progress(ProgressEvent(Step.TUMOR, "follow-up: looking for new lesions"))
    lesions = find_new_lesions(baseline, followup, _union(fol_lungs, followup), _followed(tumors), registration,
                               new_seeds, options.confirm_new, segment, warnings)
    timings["new_lesions"] = time.perf_counter() - t
    warnings[:0] = [f"baseline: {w}" for w in baseline.warnings] + [f"follow-up: {w}" for w in followup.warnings]
    used = {"lungs": base.methods["lungs"], "tumor": base.methods["tumor"] if not given else
            {"name": "from-file", "parameters": {"file": str(options.baseline_seg)}},
            "followup_tumor": {"name": tumor_method, "parameters": segment.parameters}}
    return FollowupResult(baseline, followup, inputs.dates, inputs.date_source, inputs.patient_ids, registration,
                          base_lungs, fol_lungs, tumors, lesions, used, device, timings, warnings)


@dataclass
class _Inputs:
    baseline: CTVolume
    followup: CTVolume
    seeds: list[Seed]
    followup_seeds: list[Seed]
    given: tuple | None  # the baseline segmentation's tumours: (union, lungs or None, named masks or None)
    patient_ids: tuple[str | None, str | None]
    dates: tuple[datetime.date | None, datetime.date | None]
    date_source: str | None
    warnings: list[str]


def _check_options(options: FollowupOptions) -> tuple[str, str]:
    """Refuse a method, device or weights file before reading anything; the device and tumour method."""
    if options.lungs == "none":
        raise UnavailableError("the follow-up registers the two CTs on their lungs: choose a lung method",
                               option="lungs")
    pipeline_options = options.pipeline_options()
    device = check_options(pipeline_options)
    return device, pipeline_options.tumor


def _read_inputs(baseline_path, followup_path, options: FollowupOptions, progress: Progress) -> _Inputs:
    """Read every input and refuse a bad one (step 1), before anything is computed."""
    given_dates = _parse_dates(options.dates)
    seeds = read_seeds(options.seeds_path) if options.seeds_path is not None else []
    followup_seeds = read_seeds(options.followup_seeds_path) if options.followup_seeds_path is not None else []
    progress(ProgressEvent(Step.READ, f"reading the baseline {baseline_path}"))
    baseline = read_ct(baseline_path)
    progress(ProgressEvent(Step.READ, f"reading the follow-up {followup_path}"))
    followup = read_ct(followup_path)
    warnings: list[str] = []
    patient_ids, dates, date_source = _check_pair(baseline, followup, given_dates, options, warnings)
    if seeds:
        check_seeds_in_volume(seeds, baseline.geometry, options.seeds_path)
    if followup_seeds:
        check_seeds_in_volume(followup_seeds, followup.geometry, options.followup_seeds_path)
    given = _read_baseline_seg(options.baseline_seg, baseline) if options.baseline_seg is not None else None
    return _Inputs(baseline, followup, seeds, followup_seeds, given, patient_ids, dates, date_source, warnings)


# -- step 1: the pair --------------------------------------------------------------------

def _parse_dates(dates) -> tuple[datetime.date, datetime.date] | None:
    if dates is None:
        return None
    try:
        parsed = tuple(datetime.date.fromisoformat(str(d)) for d in dates)
    except ValueError:
        raise InputError(f"{' '.join(map(str, dates))}: give two dates as YYYY-MM-DD", option="dates") from None
    if len(parsed) != 2:
        raise InputError("give two dates: the baseline's and the follow-up's", option="dates")
    if parsed[1] < parsed[0]:
        raise InputError(f"the follow-up date {parsed[1]} is before the baseline date {parsed[0]}", option="dates")
    return parsed


def _series_header(ct: CTVolume):
    """The header (no pixels) of one file of the CT's DICOM series; None for other input."""
    if not ct.series_uid or not ct.path:
        return None
    import pydicom

    root = Path(ct.path)
    for path in [root] if root.is_file() else sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
                "SeriesInstanceUID", "PatientID", "StudyDate", "AcquisitionDate", "SeriesDate"])
        except Exception:  # noqa: BLE001 - not DICOM: read_ct skipped it too
            continue
        if str(getattr(ds, "SeriesInstanceUID", "")) == ct.series_uid:
            return ds
    return None


def _dicom_date(ds) -> datetime.date | None:
    """StudyDate, else AcquisitionDate (DICOM DA, YYYYMMDD)."""
    for tag in ("StudyDate", "AcquisitionDate"):
        text = str(getattr(ds, tag, "") or "").strip()
        try:
            return datetime.datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            continue
    return None


def _check_pair(baseline: CTVolume, followup: CTVolume, given_dates, options: FollowupOptions,
                warnings: list[str]):
    """Refuse CTs of two patients or a follow-up before its baseline; the IDs, dates and their source."""
    headers = (_series_header(baseline), _series_header(followup))
    ids = tuple((str(getattr(h, "PatientID", "") or "").strip() or None) if h is not None else None for h in headers)
    if ids[0] and ids[1] and ids[0] != ids[1]:
        if not options.allow_different_patients:
            raise InputError(f"PatientID {ids[1]!r} is not the baseline's {ids[0]!r}: a CT of another patient "
                             "(refused unless this option is given)", followup.path, option="allow_different_patients")
        warnings.append(f"the CTs are of two patients (PatientID {ids[0]!r} and {ids[1]!r}), compared as asked")
    elif None in ids:
        warnings.append("the patient was not checked: a CT without DICOM PatientID")
    if given_dates is not None:
        return ids, given_dates, "given"
    dates = tuple(_dicom_date(h) if h is not None else None for h in headers)
    if None in dates:
        warnings.append("a CT without a date (DICOM StudyDate or AcquisitionDate; or give both dates): "
                        "no volume doubling time")
        return ids, dates, None
    if dates[1] < dates[0]:
        raise InputError(f"dated {dates[1]}, before the baseline ({dates[0]}, {baseline.path}): give the earlier CT "
                         "first", followup.path)
    return ids, dates, "DICOM StudyDate or AcquisitionDate"


def _union(lungs: dict[str, np.ndarray], ct: CTVolume) -> np.ndarray:
    union = np.zeros(ct.array.shape, dtype=bool)
    for mask in lungs.values():
        union |= mask
    if not union.any():
        raise InputError("no lungs found: the follow-up registers the CTs on their lungs", ct.path or None)
    return union


def _register(baseline: CTVolume, base_lungs: dict, followup: CTVolume, fol_lungs: dict, deformable: bool,
              progress: Progress):
    """The registration on both lungs (step 4); refused when the lungs do not overlap."""
    from LungTumorReconLib.followup.registration import register_followup

    try:
        return register_followup(baseline, followup, _union(base_lungs, baseline), _union(fol_lungs, followup),
                                 deformable=deformable,
                                 progress=lambda message: progress(ProgressEvent(Step.LUNGS, message)))
    except InputError as exc:  # the lungs do not overlap: name the follow-up
        raise InputError(exc.message, exc.path or followup.path or None, exc.option) from None


# -- step 3: the baseline tumours --------------------------------------------------------

def _read_baseline_seg(path: Path, ct: CTVolume):
    """The baseline tumours of a file: (their union, lungs or None, the named masks or None)."""
    from LungTumorReconLib.dicom.masks import is_dicom_object, read_dicom_segments
    from LungTumorReconLib.io.segmentation import read_segments

    if is_dicom_object(path):
        segments = read_dicom_segments(path, ct, None)
    else:
        try:
            segments, _ = read_segments(path, ct.geometry)
        except InputError as exc:
            raise InputError(exc.message, exc.path, option="baseline_seg") from None
    named = {n: m for n, m in segments.items() if n.lower().startswith("tumor ") and m.any()}
    union = segments.get(TUMOR, segments.get("label"))
    if named:
        union = np.logical_or.reduce(list(named.values()))
    if union is None or not union.any():
        raise InputError(f"no tumour in it (a non-empty segment 'tumor', 'tumor 1', ...; has: "
                         f"{', '.join(segments) or 'nothing'})", path, option="baseline_seg")
    lungs = {n: segments[n] for n in (RIGHT_LUNG, LEFT_LUNG) if n in segments and segments[n].any()}
    return union, (lungs or None), (named or None)


def _baseline_tumors(mask: np.ndarray | None, ct: CTVolume, seeds: list[Seed], named: dict | None,
                     warnings: list[str]) -> list[TrackedTumor]:
    """One tracked tumour per seed (in seed order), per named segment, or per component."""
    if named:
        parts = [(None, m) for m in named.values()]
    elif mask is None or not mask.any():
        raise InputError("no baseline tumour found: place a tumor seed on each tumour to follow",
                         option="seeds_path" if seeds else None)
    else:
        parts = split_tumors(mask, ct.geometry, seeds)
    tumors: list[TrackedTumor] = []
    seen: list[np.ndarray] = []
    for seed, part in parts:
        if any((part & other).any() for other in seen):
            where = "a segment" if seed is None else "the tumor seed at LPS ({:.1f}, {:.1f}, {:.1f}) mm".format(*seed.lps)
            warnings.append(f"{where} lies on a tumour already followed: followed once")
            continue
        seen.append(part)
        tracking_id = f"tumor {len(tumors) + 1}"
        tumors.append(TrackedTumor(tracking_id, measure_tumor(part, ct.array, ct.geometry, seed), part))
    return tumors


# -- step 4: each tumour at follow-up ----------------------------------------------------

def deepest_point_lps(mask: np.ndarray, geometry: VolumeGeometry) -> np.ndarray:
    """The voxel of ``mask`` farthest from its outside (in mm), in LPS.

    Parameters
    ----------
    mask : ndarray
        A non-empty bool (k, j, i) mask on ``geometry``'s grid.
    geometry : VolumeGeometry
        Its grid.

    Returns
    -------
    ndarray
        (3,) LPS mm.

    Examples
    --------
    >>> g = VolumeGeometry((9, 9, 9), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    >>> mask = np.zeros(g.shape_kji, bool)
    >>> mask[2:7, 2:7, 2:7] = True
    >>> deepest_point_lps(mask, g).tolist()
    [4.0, 4.0, 4.0]
    """
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    depth = ndi.distance_transform_edt(np.pad(mask[box], 1), sampling=geometry.spacing[::-1])[1:-1, 1:-1, 1:-1]
    kji = np.array(np.unravel_index(int(np.argmax(depth)), depth.shape)) + [s.start for s in box]
    return geometry.kji_to_lps(kji.astype(float))


def _place_followup_seeds(tumors: list[TrackedTumor], registration, followup_seeds: list[Seed],
                          baseline_geometry: VolumeGeometry) -> list[Seed]:
    """Each tumour's follow-up point (mapped, or the user's click near it); the clicks left over."""
    for tumor in tumors:
        deepest = _mapped(registration, deepest_point_lps(tumor.baseline_mask, baseline_geometry))
        if tumor.baseline.seed_lps is None:
            tumor.followup_seed_lps, tumor.seed_source = deepest, "mapped deepest point"
        else:
            tumor.followup_seed_lps, tumor.fallback_lps = _mapped(registration, tumor.baseline.seed_lps), deepest
    left: list[Seed] = []
    for seed in (s for s in followup_seeds if s.label == TUMOR):
        # a click within the tumour's reach is a correction of its mapped point, elsewhere a new lesion
        reach = [np.linalg.norm(np.subtract(seed.lps, t.followup_seed_lps)) - radius_of_volume_mm(t.baseline.volume_ml)
                 for t in tumors]
        if reach and min(reach) <= NEW_LESION_MARGIN_MM:
            tumor = tumors[int(np.argmin(reach))]
            tumor.followup_seed_lps, tumor.seed_source = tuple(seed.lps), "follow-up seed"
        else:
            left.append(seed)
    return left


def _followed(tumors: list[TrackedTumor]) -> list[tuple[np.ndarray, float]]:
    """Where the followed tumours are in follow-up space: (centre, radius), mapped and found."""
    known = [(np.asarray(k.followup_seed_lps), radius_of_volume_mm(k.baseline.volume_ml)) for k in tumors]
    return known + [(np.asarray(k.followup.centroid_lps), radius_of_volume_mm(k.followup.volume_ml))
                    for k in tumors if k.found]


class _Segmenter:
    """The tumour method at one follow-up point, with the follow-up's lungs (segmented once)."""

    def __init__(self, ct: CTVolume, lungs: dict[str, np.ndarray], options: PipelineOptions, device: str) -> None:
        self.ct, self.lungs, self.options, self.device = ct, lungs, options, device
        self.parameters: dict = {}

    def __call__(self, lps) -> tuple[np.ndarray | None, TumorMeasurement | None, str | None]:
        """The tumour at ``lps`` (its mask and measurements), or None and why not."""
        seed = Seed(TUMOR, tuple(float(v) for v in lps))
        if not self.ct.geometry.contains_lps(np.asarray(seed.lps)):
            return None, None, "the point lies outside the follow-up CT"
        before = len(self.ct.warnings)
        try:
            result = run_on_volume(self.ct, [seed], self.options, self.device, lungs_from=self.lungs)
        except InputError as exc:  # e.g. only aerated lung there: the tumour is gone
            return None, None, exc.message
        finally:
            noticed = self.ct.warnings[before:]
            del self.ct.warnings[before:]  # the reason goes to the tumour, not to the CT's warnings
        self.parameters = result.methods["tumor"].get("parameters", {})
        mask = result.segments.get(TUMOR)
        if mask is None or not mask.any():
            return None, None, noticed[-1] if noticed else "no tumour found at the point"
        part = split_tumors(mask, self.ct.geometry, [seed])[0][1]
        return part, measure_tumor(part, self.ct.array, self.ct.geometry, seed), None


def _mapped(registration, lps) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.asarray(registration.map_points_lps(np.asarray([lps], float)))[0])


def _find_at_followup(tumor: TrackedTumor, segment: _Segmenter) -> None:
    """Segment the tumour at its follow-up point; from its mapped deepest point when that fails."""
    if tumor.note is not None:
        return
    mask, measurement, why = segment(tumor.followup_seed_lps)
    if mask is None and tumor.seed_source == "mapped baseline seed" and tumor.fallback_lps is not None:
        mask, measurement, _ = segment(tumor.fallback_lps)
        if mask is not None:
            tumor.followup_seed_lps, tumor.seed_source = tumor.fallback_lps, "mapped deepest point"
    if mask is None:
        tumor.note = f"not found at follow-up: {why}"
    else:
        tumor.followup_mask, tumor.followup = mask, measurement
