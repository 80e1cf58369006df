"""DICOM output of a result on a DICOM CT: ``segmentation.dcm`` (SEG) and ``measurements.dcm`` (SR).

Both join the CT's study. Nothing DICOM is made for a CT read from NRRD or NIfTI: no patient or
study is ever invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from LungTumorReconLib.dicom.seg import SegSegment, build_seg
from LungTumorReconLib.dicom.source import source_series
from LungTumorReconLib.dicom.sr import MeasuredSegment, build_sr
from LungTumorReconLib.dicom.terminology import lung_terminology, tumor_laterality, tumor_terminology
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR, Seed
from LungTumorReconLib.tumor.measurements import TumorMeasurement, measure_tumor, split_tumors

SEG_FILE = "segmentation.dcm"
SR_FILE = "measurements.dcm"
TUMOR_REPORT_KEYS = ("volume_ml", "longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm", "mean_hu")


@dataclass
class DicomResult:
    """What :func:`build_dicom_results` made: the SEG and SR datasets."""

    seg: object  # highdicom.seg.Segmentation
    sr: object  # highdicom.sr.Comprehensive3DSR

    def save(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        paths = [folder / SEG_FILE, folder / SR_FILE]
        self.seg.save_as(paths[0], enforce_file_format=True)
        self.sr.save_as(paths[1], enforce_file_format=True)
        return paths


def _tumor_segments(ct: CTVolume, segments: dict[str, np.ndarray], tumors: Sequence[TumorMeasurement],
                    seeds: Sequence[Seed], method: str, uid) -> list[tuple[SegSegment, dict[str, float]]]:
    """One segment per measured tumour, plus any tumour voxels under no measurement (so that the SEG's
    tumours together equal the ``tumor`` segment)."""
    mask = segments.get(TUMOR)
    if mask is None or not mask.any():
        return []
    parts = [part for _, part in split_tumors(mask, ct.geometry, list(seeds))]
    seeded = any(s.label == TUMOR for s in seeds)
    out = []
    covered = np.zeros(mask.shape, bool)
    for n, (part, measured) in enumerate(zip(parts, tumors), start=1):
        terms = tumor_terminology(measured.longest_axial_diameter_mm, tumor_laterality(part, segments))
        segment = SegSegment(TUMOR, part, terms, method, f"tumor {n}", uid(), seeded=seeded)
        out.append((segment, {key: float(getattr(measured, key)) for key in TUMOR_REPORT_KEYS}))
        covered |= part
    rest = mask & ~covered
    if rest.any():
        terms = tumor_terminology(None, tumor_laterality(rest, segments))
        volume = float(rest.sum()) * ct.geometry.voxel_volume_ml
        out.append((SegSegment(TUMOR, rest, terms, method, f"tumor {len(out) + 1}", uid(), seeded=seeded),
                    {"volume_ml": volume}))
    return out


def build_dicom_results(ct: CTVolume, segments: dict[str, np.ndarray], tumors: Sequence[TumorMeasurement],
                        seeds: Sequence[Seed] = (), methods: dict[str, str] | None = None,
                        source_files: list | None = None) -> DicomResult:
    """The SEG and SR of a result on a DICOM CT.

    Parameters
    ----------
    ct : CTVolume
        The CT, read from DICOM (its series is read again for the references).
    segments : dict of str to ndarray
        ``right lung``, ``left lung`` and ``tumor`` masks (k, j, i) on the CT's grid; others are ignored.
    tumors : sequence of TumorMeasurement
        The tumours' measurements, in the order :func:`split_tumors` gives their masks for ``seeds``.
    seeds : sequence of Seed, optional
        The seeds the tumours were measured from.
    methods : dict of str to str, optional
        The method of each stage (``lungs``, ``tumor``), named in each segment's algorithm identification.
    source_files : list of path, optional
        The CT's DICOM files, when not in the folder it was read from (``ct.path``).

    Raises
    ------
    InputError
        If the CT was not read from DICOM, or its slices are gone.
    """
    from pydicom.uid import generate_uid

    methods = methods or {}
    series = source_series(ct, source_files)
    planned: list[tuple[SegSegment, dict[str, float]]] = []
    for name in (RIGHT_LUNG, LEFT_LUNG):
        if name in segments and segments[name].any():
            volume = float(segments[name].sum()) * ct.geometry.voxel_volume_ml
            planned.append((SegSegment(name, segments[name], lung_terminology(name), methods.get("lungs", "unknown"),
                                       name, generate_uid()), {"volume_ml": volume}))
    planned += _tumor_segments(ct, segments, tumors, seeds, methods.get("tumor", "unknown"), generate_uid)
    if not planned:
        raise ValueError("no lung or tumour segment to write")
    seg = build_seg(series, [s for s, _ in planned], generate_uid(), generate_uid())
    measured = [MeasuredSegment(n, s.terminology, s.tracking_id, s.tracking_uid, values)
                for n, (s, values) in enumerate(planned, start=1)]
    sr = build_sr(seg, series.datasets, measured, generate_uid(), generate_uid())
    return DicomResult(seg=seg, sr=sr)


def export_segments(ct: CTVolume, segments: dict[str, np.ndarray], folder: str | Path, seeds: Sequence[Seed] = (),
                    methods: dict[str, str] | None = None, source_files: list | None = None) -> list[Path]:
    """Measure the tumours of ``segments`` as they are now (corrections included) and write the SEG
    and SR into ``folder`` (made if needed); a file already there is replaced only once both are made.

    What a panel's "Export DICOM" does; ``run`` writes the same files through ``io/output_folder.py``.
    """
    import os
    import tempfile

    from LungTumorReconLib.errors import InputError

    tumor = segments.get(TUMOR)
    tumors = [measure_tumor(part, ct.array, ct.geometry, seed)
              for seed, part in split_tumors(tumor, ct.geometry, list(seeds))] if tumor is not None else []
    if not any(mask.any() for name, mask in segments.items() if name in (RIGHT_LUNG, LEFT_LUNG, TUMOR)):
        raise InputError("there is nothing to export: segment the lungs or the tumour first")
    made = build_dicom_results(ct, segments, tumors, seeds, methods, source_files)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dicom-export-", dir=folder) as partial:
        written = made.save(partial)
        paths = [folder / p.name for p in written]
        for source, target in zip(written, paths):
            os.replace(source, target)
    return paths
