"""Writing a result folder all at once: built beside the target, moved into place on success.

A failure at any point leaves the target folder as it was (absent, empty or with the
previous result) and removes the partial folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.report import build_report
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR
from LungTumorReconLib.pipeline.events import Progress, ProgressEvent, Step, ignore_progress
from LungTumorReconLib.pipeline.run import PipelineResult

SEGMENTATION_FILE = "segmentation.seg.nrrd"
MODEL_FILE = "tumor.vtk"
SCENE_FILE = "scene.mrb"
REPORT_FILE = "report.json"
AXIAL_FILE = "axial.png"
VIEW3D_FILE = "3d.png"
_OPEN_PARTIALS: set[Path] = set()  # the partial folders this process is writing now


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Refuse an output path that is a file, or a non-empty folder without ``overwrite``."""
    out = Path(out)
    try:
        out.exists()
    except PermissionError:
        raise InputError("cannot access the output folder's parent (permission denied)", out) from None
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError("output folder is not empty (use --overwrite to replace it)", out)
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise InputError("output folder cannot be created here", out)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {parent} (permission denied)", out)
    return out


def write_result(
    result: PipelineResult,
    out: str | Path,
    overwrite: bool = False,
    seeds_path: str | None = None,
    progress: Progress | None = None,
    dicom: bool = True,
) -> Path:
    """Write every output file of ``result`` into ``out`` atomically; returns ``out``.

    With ``dicom`` and a CT read from DICOM, the segments and measurements also go out as a DICOM
    SEG (``segmentation.dcm``) and SR (``measurements.dcm``) in the CT's study.
    """
    progress = progress or ignore_progress
    out = check_output_dir(out, overwrite)
    t0 = time.perf_counter()
    with partial_folder(out, overwrite) as partial:
        model = _write_files(result, partial, progress)
        dicom_files = _write_dicom(result, partial, progress) if dicom else None
        timings = dict(result.timings_s)
        timings["write"] = time.perf_counter() - t0
        timings["total"] = sum(timings[k] for k in ("read", "lungs", "tumor", "recon", "write") if k in timings)
        for key in ("read", "lungs", "tumor", "recon"):
            timings.setdefault(key, 0.0)
        report = build_report(result, model, timings, seeds_path=seeds_path)
        report["dicom"] = dicom_files
        (partial / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return out


@contextmanager
def partial_folder(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write into, moved into place as ``out`` when the block
    succeeds and removed when it fails (``out`` is then as it was).

    Parameters
    ----------
    out : str or Path
        The folder to make; refused by :func:`check_output_dir` when it is a file, or not empty
        without ``overwrite``.
    overwrite : bool, optional
        Replace a non-empty ``out`` (only once the block has succeeded).

    Returns
    -------
    Iterator[Path]
        The partial folder (``.NAME.partial-*`` beside ``out``), as the ``with`` block's value.
    """
    out = check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    partial.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a results folder is not
    _OPEN_PARTIALS.add(partial)
    try:
        yield partial
        _move_into_place(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        _OPEN_PARTIALS.discard(partial)


def remove_open_partial_folders() -> None:
    """Remove the partial folders being written, for a process about to exit at once (its
    parent, a batch's Dask worker, was killed): no half-written folder is left behind."""
    for partial in list(_OPEN_PARTIALS):
        shutil.rmtree(partial, ignore_errors=True)


def _write_files(result: PipelineResult, folder: Path, progress: Progress) -> dict | None:
    from LungTumorReconLib.io.render import render_3d_png, render_axial_png
    from LungTumorReconLib.mrml.presenter import ResultPresenter
    from LungTumorReconLib.mrml.roles import MODEL_COLOR, SEGMENT_COLORS
    from LungTumorReconLib.mrml.scene import Scene
    from LungTumorReconLib.surface.marching_cubes import surface_volume_ml

    ct = result.ct
    progress(ProgressEvent(Step.WRITE, "building the Slicer scene"))
    scene = Scene()
    try:
        nodes = ResultPresenter(scene).add_result(result)
        seg_node = nodes.segmentation
        if seg_node is not None:
            scene.save_node(seg_node, folder / SEGMENTATION_FILE)
        model = None
        if nodes.model is not None:
            scene.save_node(nodes.model, folder / MODEL_FILE)
            model = {
                "file": MODEL_FILE,
                "points": int(result.surface_lps.GetNumberOfPoints()),
                "volume_ml": surface_volume_ml(result.surface_lps),
                "coordinate_system": "LPS",
            }

        progress(ProgressEvent(Step.WRITE, "rendering pictures"))
        render_axial_png(ct.array, ct.geometry, result.segments, folder / AXIAL_FILE)
        surfaces = []
        if seg_node is not None:
            lung_names = [n for n in (RIGHT_LUNG, LEFT_LUNG) if n in result.segments]
            closed = scene.closed_surfaces_lps(seg_node) if lung_names or TUMOR in result.segments else {}
            for name in lung_names:
                surfaces.append((name, closed.get(name), SEGMENT_COLORS[name], 0.25))
            if result.surface_lps is None and TUMOR in closed:
                surfaces.append((TUMOR, closed[TUMOR], SEGMENT_COLORS[TUMOR], 1.0))
        if result.surface_lps is not None:
            surfaces.append(("tumor model", result.surface_lps, MODEL_COLOR, 1.0))
        render_3d_png(surfaces, folder / VIEW3D_FILE)

        progress(ProgressEvent(Step.WRITE, "saving the scene bundle"))
        scene.save_mrb(folder / SCENE_FILE)
        return model
    finally:
        scene.close()


def _write_dicom(result: PipelineResult, folder: Path, progress: Progress) -> dict | None:
    """The DICOM SEG and SR, for a CT read from DICOM with something segmented; what was written."""
    from LungTumorReconLib.dicom.export import SEG_FILE, SR_FILE, build_dicom_results
    from LungTumorReconLib.dicom.source import is_dicom_ct

    if not is_dicom_ct(result.ct) or not any(mask.any() for mask in result.segments.values()):
        return None
    progress(ProgressEvent(Step.WRITE, "writing the DICOM SEG and SR"))
    stages = {stage: used.get("name", "unknown") for stage, used in result.methods.items() if isinstance(used, dict)}
    made = build_dicom_results(result.ct, result.segments, result.tumors, result.seeds, stages)
    made.save(folder)
    return {"segmentation": SEG_FILE, "measurements": SR_FILE, "study_uid": str(made.seg.StudyInstanceUID),
            "segmentation_series_uid": str(made.seg.SeriesInstanceUID),
            "measurements_series_uid": str(made.sr.SeriesInstanceUID)}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into_place(partial: Path, out: Path) -> None:
    """Swap ``partial`` in for ``out``; the previous ``out`` is removed only after the swap."""
    if out.exists():
        previous = out.with_name(f".{out.name}.previous-{int(time.time() * 1000)}")
        out.rename(previous)
        try:
            partial.rename(out)
        except BaseException:
            previous.rename(out)
            raise
        shutil.rmtree(previous, ignore_errors=True)
    else:
        partial.rename(out)
