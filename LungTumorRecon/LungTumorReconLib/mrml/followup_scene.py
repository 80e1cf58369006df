"""A finished follow-up folder (``lungtumorrecon followup``'s output) in Slicer's scene, for the
panels: each CT's segmentation on its volume node, the registration as a transform node, the
growth table, and where each tumour is at both times. Also the files a follow-up job reads from
the scene (a volume, the seeds). Not for clinical use.

The follow-up volume is put under the registration's transform (as ``scene.mrb`` does), so
that it is shown aligned on the baseline: linked slice views (Slicer's linking copies one
view's position to the other) then show the same anatomy, and each tumour's follow-up centre,
given where the views show it, lies near its baseline centre.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import lps_to_ras
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.mrml.roles import DICOM_SERIES_ATTRIBUTE, DICOM_SOURCE_ATTRIBUTE, NODE_NAMES, Role
from LungTumorReconLib.mrml.scene import Scene

# The growth table's columns: (key, title); every value is display text.
GROWTH_COLUMNS = [
    ("tumor", "tumour"),
    ("baseline_ml", "baseline (mL)"),
    ("followup_ml", "follow-up (mL)"),
    ("change_percent", "volume change (%)"),
    ("baseline_diameter_mm", "longest axial before (mm)"),
    ("followup_diameter_mm", "longest axial after (mm)"),
    ("doubling_time_days", "doubling time (days; negative: halving)"),
    ("lung_rads", "Lung-RADS v2022 (suggestion)"),
]
GROWTH_LABEL = "Growth, doubling time, Lung-RADS and RECIST: research software, not for clinical use"
NONE = "—"  # a value that does not exist (no dates, a tumour gone)


@dataclass
class FollowupNodes:
    """A follow-up folder in the scene: its nodes, the growth table's rows (display text by
    :data:`GROWTH_COLUMNS` key), the RECIST line, and each tumour's centre (world RAS, where
    the views show it) at baseline and at follow-up, in the rows' order."""

    baseline_volume: object
    followup_volume: object
    baseline_segmentation: object
    followup_segmentation: object
    transform: object
    table: object
    rows: list[dict] = field(default_factory=list)
    recist: str = ""
    new_lesions: str = ""
    centres_ras: list[tuple[tuple[float, float, float], tuple[float, float, float]]] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def _number(value, digits: int, sign: bool = False) -> str:
    if value is None:
        return NONE
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def growth_rows(report: dict) -> list[dict]:
    """One row per tracked tumour of a ``followup.json`` document, as display text."""
    rows = []
    for t in report["tumors"]:
        before, after = t["baseline"], t["followup"]
        vdt = t["doubling_time_days"]
        rows.append({
            "tumor": t["tracking_id"],
            "baseline_ml": _number(before["volume_ml"], 2),
            "followup_ml": _number(after["volume_ml"], 2) if after else "gone",
            "change_percent": _number(t["volume_change_percent"], 1, sign=True),
            "baseline_diameter_mm": _number(before["longest_axial_diameter_mm"], 1),
            "followup_diameter_mm": _number(after["longest_axial_diameter_mm"], 1) if after else NONE,
            # null with an interval: the change lies within the partial-volume rim
            "doubling_time_days": (_number(vdt, 0) if vdt is not None or not t["doubling_time_interval_days"]
                                   else "no measurable change"),
            "lung_rads": (t["lung_rads"] or {}).get("category") or NONE,
        })
    return rows


def recist_line(report: dict) -> str:
    """The RECIST 1.1 response in one line, labelled not for clinical use."""
    from LungTumorReconLib.followup.cli import summary_lines

    return summary_lines(report)[-1]  # the command's own last line


def new_lesions_line(report: dict) -> str:
    """How many possible new lesions, and how many confirmed ("" when none)."""
    new = report["new_lesions"]
    return f"possible new lesions: {len(new)} ({sum(n['confirmed'] for n in new)} confirmed)" if new else ""


def show_in_views(node, view_node_ids: list[str]) -> None:
    """Show a displayable node only in these views (all views when the list is empty)."""
    for i in range(node.GetNumberOfDisplayNodes()):
        display = node.GetNthDisplayNode(i)
        display.RemoveAllViewNodeIDs()
        for view_id in view_node_ids:
            display.AddViewNodeID(view_id)


def write_volume_file(volume_node, folder: str | Path, name: str, dicom_files: list | None = None) -> Path:
    """The file a follow-up job reads for a volume of the scene, so that from DICOM the job checks
    the patient and takes the study date:

    - ``dicom_files`` (the series' files, from Slicer's DICOM database): linked, or copied, into
      ``folder/NAME/``, that series alone (the database's own folder may hold others);
    - else the DICOM folder the library read the volume from;
    - else its voxels, written as ``folder/NAME.nrrd`` (LPS, as every file).
    """
    from LungTumorReconLib.io.ct import write_image

    if not volume_node:
        raise InputError("select both CTs: the baseline and the follow-up")
    if dicom_files:
        return _series_folder(dicom_files, Path(folder) / name)
    source = volume_node.GetAttribute(DICOM_SOURCE_ATTRIBUTE)
    if source and volume_node.GetAttribute(DICOM_SERIES_ATTRIBUTE) and Path(source).exists():
        return Path(source)
    ct = Scene.volume_ct(volume_node)
    path = Path(folder) / f"{name}.nrrd"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(ct.array, ct.geometry, path)
    return path


def _series_folder(files: list, folder: Path) -> Path:
    """``files`` in a folder of their own: hard links where the filesystem allows, else copies."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, source in enumerate(map(Path, files)):
        if not source.is_file():
            raise InputError("a DICOM file of the CT is missing", source)
        target = folder / f"{n:05d}-{source.name}"  # numbered: two series folders may reuse names
        try:
            os.link(source, target)
        except OSError:  # another drive, or links refused
            shutil.copyfile(source, target)
    return folder


def write_seeds_file(seeds_node, volume_node, path: str | Path) -> Path | None:
    """The placed seeds, in ``volume_node``'s frame, as a markups file; None without seeds."""
    from LungTumorReconLib.io.seeds import seeds_to_markups_json

    seeds = Scene.seeds_from_node(seeds_node, volume_node) if seeds_node is not None else []
    if not seeds:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seeds_to_markups_json(seeds)), encoding="utf-8")
    return path


def remove_followup_nodes(presenter, volume_node, with_volume: bool = False) -> None:
    """Remove what a loaded follow-up made for ``volume_node`` (segmentation, transform, table),
    and with ``with_volume`` the volume node itself."""
    for role in (Role.FOLLOWUP_SEGMENTATION, Role.FOLLOWUP_TRANSFORM, Role.FOLLOWUP_TABLE):
        presenter.remove(role, volume_node)
    if with_volume and volume_node.GetScene() is not None:
        presenter.scene.mrml.RemoveNode(volume_node)


def load_followup(presenter, folder: str | Path, baseline_volume, followup_volume, align: bool = True) -> FollowupNodes:
    """Put a follow-up folder into the scene, on the two volume nodes it was computed from; the
    nodes a previous follow-up of these volumes made are replaced (``presenter`` is the scene's
    :class:`~LungTumorReconLib.mrml.presenter.ResultPresenter`; see its ``load_followup``)."""
    import SimpleITK as sitk

    from LungTumorReconLib.followup.output import BASELINE_SEG_FILE, FOLLOWUP_SEG_FILE, REPORT_FILE, TRANSFORM_FILE
    from LungTumorReconLib.io.segmentation import read_segments

    folder = Path(folder)
    if not (folder / REPORT_FILE).is_file():
        raise InputError(f"not a follow-up folder (no {REPORT_FILE})", folder)
    if not baseline_volume or not followup_volume:
        raise InputError("select both CTs: the baseline and the follow-up")
    report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    scene = presenter.scene
    for volume in (baseline_volume, followup_volume):
        remove_followup_nodes(presenter, volume)
    segmentations = []
    for which, volume, name in (("baseline", baseline_volume, BASELINE_SEG_FILE),
                                ("follow-up", followup_volume, FOLLOWUP_SEG_FILE)):
        geometry = Scene.volume_geometry(volume)
        masks, _ = read_segments(folder / name, geometry)  # onto the node's grid, in patient space
        node = scene.set_segmentation(masks, geometry, name=f"{which} segmentation", reference_volume=volume)
        segmentations.append(presenter.tag(node, Role.FOLLOWUP_SEGMENTATION, volume))
    registration = sitk.ReadTransform(str(folder / TRANSFORM_FILE))  # baseline LPS -> follow-up LPS
    transform = presenter.tag(scene.add_transform(registration, NODE_NAMES[Role.FOLLOWUP_TRANSFORM]),
                              Role.FOLLOWUP_TRANSFORM, followup_volume)
    if align:
        for node in (followup_volume, segmentations[1]):
            node.SetAndObserveTransformNodeID(transform.GetID())
    rows = growth_rows(report)
    table = presenter.tag(scene.add_table(rows, name=NODE_NAMES[Role.FOLLOWUP_TABLE],
                                          columns=[key for key, _ in GROWTH_COLUMNS]),
                          Role.FOLLOWUP_TABLE, baseline_volume)
    centres = []
    for t in report["tumors"]:
        before_lps = np.asarray(t["baseline"]["centroid_lps"], float)
        # a tumour gone is looked at where the registration maps its baseline centre
        after_lps = (np.asarray(t["followup"]["centroid_lps"], float) if t["followup"]
                     else np.asarray(registration.TransformPoint(tuple(float(v) for v in before_lps))))
        centres.append((Scene.world_ras(baseline_volume, lps_to_ras(before_lps)),
                        Scene.world_ras(followup_volume, lps_to_ras(after_lps))))
    return FollowupNodes(baseline_volume, followup_volume, segmentations[0], segmentations[1], transform, table,
                         rows, recist_line(report), new_lesions_line(report), centres, report)
