"""From a follow-up result to numbers: each tumour's growth, its Lung-RADS suggestion at
follow-up, the RECIST 1.1 response, and the ``followup.json`` document
(``Resources/Schemas/followup.schema.json``). Not for clinical use.

A volume is known only to within its partial-volume rim (half a voxel each way,
:func:`~LungTumorReconLib.followup.growth.partial_volume_bounds`), so each volume doubling time
comes with the interval those bounds allow (:func:`~LungTumorReconLib.followup.growth.vdt_interval`).
An interval that includes infinity means no measurable change: the doubling time is then null
and the tumour flagged "no measurable growth"; Schwartz's value from the two measured volumes is
still given as ``doubling_time_measured_days`` for a reader who wants it.
"""

from __future__ import annotations

import json
import math

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.followup.growth import (
    mean_diameter_mm,
    no_measurable_growth,
    partial_volume_bounds,
    percent_change,
    round_tenth,
    vdt_interval,
    volume_doubling_time_days,
)
from LungTumorReconLib.followup.pipeline import NOT_FOR_CLINICAL_USE, FollowupResult, TrackedTumor
from LungTumorReconLib.followup.recist import choose_targets, recist_response
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.resources import resource_path
from LungTumorReconLib.tumor.lungrads import is_growing, lung_rads_category
from LungTumorReconLib.tumor.measurements import TumorMeasurement

SCHEMA_PATH = resource_path("Schemas", "followup.schema.json")
LABEL = f"LungTumorRecon follow-up: {NOT_FOR_CLINICAL_USE}"
NOTES = [
    "Volume doubling times (Schwartz) come with the interval that each volume's partial-volume rim allows "
    "(half of the mask's boundary voxels and half of a one-voxel rim around it). Nietert et al. (Chest "
    "2009;135:1580-7) show such intervals are wide for small nodules and on thick slices, often too wide to "
    "tell growth from none: when the interval includes infinity the doubling time is null and the tumour is "
    "flagged as having no measurable growth.",
    "RECIST 1.1 over at most two lung target lesions (longest axial diameter >= 10 mm at baseline, on slices "
    "of 5 mm or less); non-target progression is a reader's judgement and is not assessed; a possible new "
    "lesion counts only when confirmed.",
    "Lung-RADS v2022 categories are suggestions from automatic measurements for a reader to check.",
    "Not for clinical use.",
]


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: None stands for it (and for unknown)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _measures(m: TumorMeasurement, mask: np.ndarray, geometry: VolumeGeometry) -> dict:
    inner, outer = partial_volume_bounds(mask, geometry)
    return {
        "centroid_lps": [float(v) for v in m.centroid_lps],
        "volume_ml": float(m.volume_ml),
        "volume_inner_ml": inner,
        "volume_outer_ml": outer,
        "voxels": int(m.voxels),
        "longest_axial_diameter_mm": float(m.longest_axial_diameter_mm),
        "short_axis_mm": float(m.short_axis_mm),
        "mean_diameter_mm": mean_diameter_mm(m.longest_axial_diameter_mm, m.short_axis_mm),
        "max_3d_diameter_mm": float(m.max_3d_diameter_mm),
        "mean_hu": float(m.mean_hu),
        "nodule_type": m.nodule_type,
        "solid_mean_diameter_mm": m.solid_mean_diameter_mm,
    }


def _interval(base: dict, fol: dict, days: float) -> tuple[float, float] | None:
    """The VDT interval from the rims; None when a mask is too thin to have an inside."""
    if base["volume_inner_ml"] <= 0 or fol["volume_inner_ml"] <= 0:
        return None
    return vdt_interval(base["volume_inner_ml"], base["volume_outer_ml"], fol["volume_inner_ml"],
                        fol["volume_outer_ml"], days)


def _lung_rads(tumor: TrackedTumor, base: dict, fol: dict, days: int | None) -> tuple[dict, bool]:
    """The follow-up suggestion (status followup) and whether the nodule grows (Lung-RADS)."""
    kind = tumor.followup.nodule_type or "solid"
    solid = fol["solid_mean_diameter_mm"]
    part_solid = kind == "part-solid" and solid is not None and base["solid_mean_diameter_mm"] is not None
    kind = kind if part_solid or kind != "part-solid" else "solid"
    # a part-solid nodule grows by its solid component (v2022)
    before, after = ((base["solid_mean_diameter_mm"], solid) if part_solid
                     else (base["mean_diameter_mm"], fol["mean_diameter_mm"]))
    growing = is_growing(before, after, days if days else None)
    suggestion = lung_rads_category(kind, fol["mean_diameter_mm"], solid if part_solid else None,
                                    status="followup", growing=growing)
    return suggestion.as_dict(), growing


def tumor_growth(tumor: TrackedTumor, days: int | None, baseline: VolumeGeometry, followup: VolumeGeometry) -> dict:
    """One tracked tumour's ``followup.json`` entry: both measurements and their changes.

    Parameters
    ----------
    tumor : TrackedTumor
        The tumour as :func:`~LungTumorReconLib.followup.pipeline.run_followup` followed it.
    days : int or None
        Days between the CTs; without them (or 0) no doubling time.
    baseline, followup : VolumeGeometry
        The grids of the baseline and the follow-up masks.

    Returns
    -------
    dict
        tracking_id, found, baseline and follow-up measurements, volume ratio, percent changes,
        doubling time (None without dates, or when its interval includes infinity) with its
        interval and the measured value, the no-measurable-growth flag and the Lung-RADS suggestion at follow-up.
    """
    base = _measures(tumor.baseline, tumor.baseline_mask, baseline)
    base.update(seed_lps=tumor.baseline.seed_lps, lung_rads=tumor.baseline.lung_rads)
    entry = {"tracking_id": tumor.tracking_id, "found": tumor.found, "note": tumor.note, "baseline": base,
             "followup": None, "volume_ratio": 0.0, "doubling_time_days": None, "doubling_time_measured_days": None,
             "doubling_time_interval_days": None,
             "no_measurable_growth": False, "growing": False, "lung_rads": None}
    if not tumor.found:  # gone: every size is 0 at follow-up
        for key in ("volume", "longest_diameter", "short_axis", "mean_diameter"):
            entry[f"{key}_change_percent"] = -100.0
        return entry
    fol = _measures(tumor.followup, tumor.followup_mask, followup)
    fol.update(seed_lps=[float(v) for v in tumor.followup_seed_lps], seed_source=tumor.seed_source)
    entry["followup"] = fol
    entry["volume_ratio"] = fol["volume_ml"] / base["volume_ml"]
    for key, field in (("volume", "volume_ml"), ("longest_diameter", "longest_axial_diameter_mm"),
                       ("short_axis", "short_axis_mm"), ("mean_diameter", "mean_diameter_mm")):
        entry[f"{key}_change_percent"] = percent_change(base[field], fol[field])
    # measurability does not depend on the interval's length: one day stands in without dates
    interval = _interval(base, fol, days if days else 1)
    measurable = interval is not None and math.isfinite(interval[1])
    entry["no_measurable_growth"] = interval is None or no_measurable_growth(interval)
    if days and days > 0:  # negative: the halving time of a shrinking tumour
        measured = _finite(volume_doubling_time_days(base["volume_ml"], fol["volume_ml"], days))
        entry["doubling_time_measured_days"] = measured
        entry["doubling_time_days"] = measured if measurable else None  # no measurable change: none
        if interval is not None:
            entry["doubling_time_interval_days"] = {"low": _finite(interval[0]), "high": _finite(interval[1]),
                                                    "includes_infinity": not measurable}
    entry["lung_rads"], entry["growing"] = _lung_rads(tumor, base, fol, days)
    return entry


def recist_entry(entries: list[dict], confirmed_new: bool) -> dict:
    """RECIST 1.1 over the targets among ``entries`` (:func:`tumor_growth`'s), as ``followup.json`` holds it.

    Parameters
    ----------
    entries : list of dict
        Each tracked tumour's entry, in tracking order.
    confirmed_new : bool
        A new lesion was confirmed.

    Returns
    -------
    dict
        response (CR, PR, SD, PD; None without a target and without a new lesion), rule, the
        targets' tracking IDs, both sums and the percent change.
    """
    longest = [round_tenth(e["baseline"]["longest_axial_diameter_mm"]) for e in entries]
    targets = choose_targets(longest)
    out = {"targets": [entries[i]["tracking_id"] for i in targets], "baseline_sum_mm": None,
           "followup_sum_mm": None, "change_percent": None, "new_lesions": confirmed_new,
           "non_target_progression": "not assessed", "label": f"RECIST 1.1: {NOT_FOR_CLINICAL_USE}"}
    if not targets:
        out.update(response="PD" if confirmed_new else None,
                   rule="new lesion" if confirmed_new else "no measurable target lesion (longest axial diameter "
                   ">= 10 mm) at baseline")
        return out
    after = [round_tenth(e["followup"]["longest_axial_diameter_mm"]) if e["found"] else 0.0 for e in entries]
    result = recist_response(sum(longest[i] for i in targets), sum(after[i] for i in targets),
                             new_lesions=confirmed_new, targets_all_gone=not any(entries[i]["found"] for i in targets))
    out.update(response=result.response, rule=result.rule, baseline_sum_mm=result.baseline_sum_mm,
               followup_sum_mm=result.followup_sum_mm, change_percent=result.change_percent)
    return out


def _ct_entry(ct: CTVolume, patient_id: str | None) -> dict:
    g = ct.geometry
    return {"path": ct.path, "series_uid": ct.series_uid, "patient_id": patient_id, "size": list(g.size),
            "spacing_mm": list(g.spacing)}


def _lesion_entry(lesion, followup: VolumeGeometry) -> dict:
    entry = {"id": lesion.lesion_id, "centroid_lps": list(lesion.centroid_lps), "volume_ml": lesion.volume_ml,
             "diameter_mm": lesion.diameter_mm, "score": lesion.score, "source": lesion.source,
             "confirmed": lesion.confirmed, "measurement": None, "lung_rads": None}
    if lesion.measurement is not None:
        entry["measurement"] = _measures(lesion.measurement, lesion.mask, followup)
        m = entry["measurement"]
        kind = lesion.measurement.nodule_type or "solid"
        solid = m["solid_mean_diameter_mm"] if kind == "part-solid" else None
        kind = "solid" if kind == "part-solid" and solid is None else kind
        entry["lung_rads"] = lung_rads_category(kind, m["mean_diameter_mm"], solid, status="new").as_dict()
    return entry


def build_followup_report(result: FollowupResult, files: dict | None = None) -> dict:
    """The ``followup.json`` document of a result (it validates against :data:`SCHEMA_PATH`).

    Parameters
    ----------
    result : FollowupResult
        What :func:`~LungTumorReconLib.followup.pipeline.run_followup` returned.
    files : dict, optional
        The output files written beside it, by role.

    Returns
    -------
    dict
        Ready for ``json.dumps(..., allow_nan=False)``.
    """
    from LungTumorReconLib.io.report import package_versions

    days = result.days
    g0, g1 = result.baseline_ct.geometry, result.followup_ct.geometry
    entries = [tumor_growth(t, days, g0, g1) for t in result.tumors]
    reg = result.registration
    kept = "deformable" if _is_composite(reg.transform) else "affine"
    return {
        "label": LABEL,
        "not_for_clinical_use": True,
        "baseline": _ct_entry(result.baseline_ct, result.patient_ids[0]),
        "followup": _ct_entry(result.followup_ct, result.patient_ids[1]),
        "dates": {"baseline": result.dates[0].isoformat() if result.dates[0] else None,
                  "followup": result.dates[1].isoformat() if result.dates[1] else None,
                  "days": days, "source": result.date_source},
        "registration": {
            "method": "SimpleITK on the lungs: rigid, affine" + (", B-spline" if "deformable" in reg.stages else "")
                      + " (Mattes mutual information)",
            "kept": kept, "lung_dice": float(reg.lung_dice),
            "lung_dice_per_stage": {k: float(v) for k, v in reg.stages.items()}, "seconds": float(reg.seconds)},
        "methods": {**result.methods, "device": result.device},
        "tumors": entries,
        "recist": recist_entry(entries, any(n.confirmed for n in result.new_lesions)),
        "new_lesions": [_lesion_entry(n, g1) for n in result.new_lesions],
        "notes": list(NOTES),
        "warnings": list(result.warnings),
        "files": dict(files or {}),
        "timings_s": {k: round(float(v), 4) for k, v in result.timings_s.items()},
        "versions": package_versions(),
    }


def _is_composite(transform) -> bool:
    return transform.GetName() == "CompositeTransform"


def load_schema() -> dict:
    """The JSON schema of ``followup.json``."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
