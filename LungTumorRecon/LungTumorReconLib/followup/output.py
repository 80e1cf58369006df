"""Writing a follow-up's folder all at once (built hidden, moved into place on success):

* ``followup.json``: :func:`~LungTumorReconLib.followup.assessment.build_followup_report`;
* ``scene.mrb``: both CTs, the follow-up (and its segmentation) under a transform node holding
  the registration, so that Slicer shows it aligned on the baseline, and both segmentations;
* ``baseline.seg.nrrd``, ``followup.seg.nrrd``: each on its CT's grid; ``registration.h5``;
* ``followup.png``: each tumour's axial slice at both times side by side, outlined, with dates.

Not for clinical use: the picture and the document say so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from LungTumorReconLib.followup.assessment import build_followup_report
from LungTumorReconLib.followup.pipeline import NOT_FOR_CLINICAL_USE, FollowupResult
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.output_folder import partial_folder
from LungTumorReconLib.pipeline.events import Progress, ProgressEvent, Step, ignore_progress

REPORT_FILE = "followup.json"
SCENE_FILE = "scene.mrb"
PICTURE_FILE = "followup.png"
BASELINE_SEG_FILE = "baseline.seg.nrrd"
FOLLOWUP_SEG_FILE = "followup.seg.nrrd"
TRANSFORM_FILE = "registration.h5"
PANEL_PX = 320
MAX_ROWS = 4  # tumours in the picture (the JSON has them all)
OUTLINE = (255, 70, 50)
WINDOW = (-600.0, 1500.0)  # level, width (HU)


def write_followup(result: FollowupResult, out: str | Path, overwrite: bool = False,
                   progress: Progress | None = None) -> tuple[Path, dict]:
    """Write every output of ``result`` into ``out`` atomically (module docstring).

    Parameters
    ----------
    result : FollowupResult
        What :func:`~LungTumorReconLib.followup.pipeline.run_followup` returned.
    out : str or Path
        The folder; refused when it is a file, or not empty without ``overwrite``.
    overwrite : bool, optional
        Replace a non-empty ``out``.
    progress : callable, optional
        Receives progress events.

    Returns
    -------
    (Path, dict)
        ``out`` and the ``followup.json`` document written there.
    """
    progress = progress or ignore_progress
    t0 = time.perf_counter()
    files = {"report": REPORT_FILE, "scene": SCENE_FILE, "picture": PICTURE_FILE, "baseline_segmentation":
             BASELINE_SEG_FILE, "followup_segmentation": FOLLOWUP_SEG_FILE, "registration": TRANSFORM_FILE}
    with partial_folder(out, overwrite) as partial:
        report = build_followup_report(result, files)
        result.registration.write_transform(partial / TRANSFORM_FILE)
        progress(ProgressEvent(Step.WRITE, "building the Slicer scene"))
        _write_scene(result, partial)
        progress(ProgressEvent(Step.WRITE, "drawing the tumours at both times"))
        render_followup_png(result, report, partial / PICTURE_FILE)
        report["timings_s"]["write"] = round(time.perf_counter() - t0, 4)
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        (partial / REPORT_FILE).write_text(text, encoding="utf-8")
    return Path(out), report


def segments_of(result: FollowupResult, which: str) -> dict[str, np.ndarray]:
    """The lungs and the tracked tumours (by tracking ID; new lesions by their ID) of one CT."""
    if which == "baseline":
        masks = dict(result.baseline_lungs)
        masks.update((t.tracking_id, t.baseline_mask) for t in result.tumors)
        return masks
    masks = dict(result.followup_lungs)
    masks.update((t.tracking_id, t.followup_mask) for t in result.tumors if t.found)
    masks.update((n.lesion_id, n.mask) for n in result.new_lesions if n.mask is not None)
    return masks


def _write_scene(result: FollowupResult, folder: Path) -> None:
    from LungTumorReconLib.mrml.scene import Scene

    scene = Scene()
    try:
        names = [f"{when} CT" + (f" {d.isoformat()}" if d else "") for when, d in zip(("baseline", "follow-up"),
                                                                                        result.dates)]
        nodes = []
        for ct, name in zip((result.baseline_ct, result.followup_ct), names):
            node = scene.add_volume(ct.array, ct.geometry, name=name)
            Scene.mark_dicom_source(node, ct)
            nodes.append(node)
        transform = scene.add_transform(result.registration.transform, "follow-up to baseline (registration)")
        segmentations = []
        for which, node, path in (("baseline", nodes[0], BASELINE_SEG_FILE), ("followup", nodes[1], FOLLOWUP_SEG_FILE)):
            ct = result.baseline_ct if which == "baseline" else result.followup_ct
            seg = scene.set_segmentation(segments_of(result, which), ct.geometry, name=f"{which} segmentation",
                                         reference_volume=node)
            scene.save_node(seg, folder / path)
            segmentations.append(seg)
        for node in (nodes[1], segmentations[1]):  # the follow-up shown on the baseline
            node.SetAndObserveTransformNodeID(transform.GetID())
        scene.save_mrb(folder / SCENE_FILE)
    finally:
        scene.close()


def _axial_panel(ct: CTVolume, mask: np.ndarray | None, centre_lps, half_mm: float) -> Image.Image:
    """An axial square around ``centre_lps`` (radiological: patient right on the left, anterior
    up), resampled from the CT whatever its orientation, with ``mask`` outlined."""
    px = 2.0 * half_mm / PANEL_PX
    reference = sitk.Image([PANEL_PX, PANEL_PX, 1], sitk.sitkFloat32)
    reference.SetSpacing((px, px, 1.0))
    reference.SetOrigin((centre_lps[0] - half_mm, centre_lps[1] - half_mm, centre_lps[2]))
    hu = sitk.GetArrayFromImage(sitk.Resample(ct.to_sitk(), reference, sitk.Transform(), sitk.sitkLinear, -1000.0))[0]
    level, width = WINDOW
    gray = (np.clip((hu - (level - width / 2)) / width, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    if mask is not None and mask.any():
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        ct.geometry.apply_to_sitk(image)
        cut = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0))[0] > 0
        edge = cut & ~ndi.binary_erosion(cut)
        rgb[ndi.binary_dilation(edge) if edge.any() else edge] = OUTLINE
    return Image.fromarray(rgb)


def _panel_text(report: dict, entry: dict, when: str) -> str:
    date = report["dates"]["baseline" if when == "baseline" else "followup"] or "no date"
    part = entry["baseline"] if when == "baseline" else entry["followup"]
    head = f"{entry['tracking_id']}  {'baseline' if when == 'baseline' else 'follow-up'} {date}"
    if part is None:
        return f"{head}\nnot found (gone)"
    text = f"{head}\n{part['volume_ml']:.2f} mL, {part['longest_axial_diameter_mm']:.1f} mm"
    if when == "followup":
        vdt = entry["doubling_time_days"]
        text += f" ({entry['volume_change_percent']:+.0f} %)\n" + (
            f"VDT {vdt:.0f} d" if vdt is not None else "no measurable growth" if entry["no_measurable_growth"]
            else "VDT: no dates")
    return text


def render_followup_png(result: FollowupResult, report: dict, path: str | Path) -> None:
    """Each tracked tumour (up to MAX_ROWS) at baseline and follow-up, side by side, outlined.

    Parameters
    ----------
    result : FollowupResult
        The CTs and masks.
    report : dict
        Its ``followup.json`` document (the numbers written on the panels).
    path : str or Path
        The PNG to write.
    """
    rows = []
    for tumor, entry in list(zip(result.tumors, report["tumors"]))[:MAX_ROWS]:
        extent = max(entry["baseline"]["longest_axial_diameter_mm"],
                     entry["followup"]["longest_axial_diameter_mm"] if entry["followup"] else 0.0)
        half = float(np.clip(1.5 * extent, 25.0, 100.0))  # the tumour and some lung around it
        base_centre = entry["baseline"]["centroid_lps"]
        fol_centre = entry["followup"]["centroid_lps"] if entry["followup"] else tumor.followup_seed_lps
        panels = [_axial_panel(result.baseline_ct, tumor.baseline_mask, base_centre, half),
                  _axial_panel(result.followup_ct, tumor.followup_mask, fol_centre, half)]
        for panel, when in zip(panels, ("baseline", "followup")):
            ImageDraw.Draw(panel).multiline_text((6, 4), _panel_text(report, entry, when), fill=(255, 255, 0))
        rows.append(panels)
    footer = 34
    canvas = Image.new("RGB", (2 * PANEL_PX, max(1, len(rows)) * PANEL_PX + footer), (0, 0, 0))
    for r, panels in enumerate(rows):
        for c, panel in enumerate(panels):
            canvas.paste(panel, (c * PANEL_PX, r * PANEL_PX))
    recist = report["recist"]
    draw = ImageDraw.Draw(canvas)
    y = canvas.height - footer + 4
    draw.text((6, y), f"RECIST 1.1: {recist['response'] or 'not evaluable'}   axial, R | L, "
                      f"{len(report['tumors'])} tumour(s), {sum(n['confirmed'] for n in report['new_lesions'])} "
                      "confirmed new", fill=(255, 255, 255))
    draw.text((6, y + 14), f"LungTumorRecon follow-up: {NOT_FOR_CLINICAL_USE}", fill=(255, 120, 120))
    canvas.save(path)
