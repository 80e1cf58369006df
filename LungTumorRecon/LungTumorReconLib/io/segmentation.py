"""Reading a Slicer ``.seg.nrrd`` (or any label image) without Slicer, with SimpleITK.

A ``.seg.nrrd`` holds one labelmap layer per component; its header says, per segment,
the name, the layer and the label value (``SegmentN_Name``, ``SegmentN_Layer``,
``SegmentN_LabelValue``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.dicom.terminology import TERMINOLOGY_TAG, terminology_for
from LungTumorReconLib.errors import InputError


def read_segments(path: str | Path, geometry: VolumeGeometry | None = None) -> tuple[dict[str, np.ndarray], VolumeGeometry]:
    """All segments of a ``.seg.nrrd`` as (k, j, i) bool masks.

    With ``geometry`` the masks are resampled (nearest neighbour, in patient space) onto it;
    otherwise they are on the file's own grid, which is returned.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such segmentation file", path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError("not a readable segmentation or label image", path) from None
    keys = set(image.GetMetaDataKeys())
    segments: dict[str, sitk.Image] = {}
    i = 0
    while f"Segment{i}_Name" in keys:
        name = image.GetMetaData(f"Segment{i}_Name")
        layer = int(image.GetMetaData(f"Segment{i}_Layer")) if f"Segment{i}_Layer" in keys else 0
        value = int(image.GetMetaData(f"Segment{i}_LabelValue")) if f"Segment{i}_LabelValue" in keys else 1
        component = sitk.VectorIndexSelectionCast(image, layer) if image.GetNumberOfComponentsPerPixel() > 1 else image
        segments[name] = component == value
        i += 1
    if not segments:  # a plain label image: every voxel > 0
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError("multi-component image without segment names", path)
        segments["label"] = image > 0
    if image.GetDimension() != 3:
        raise InputError("segmentation must be 3D", path)
    if geometry is None:
        geometry = VolumeGeometry.from_sitk(image)
    reference = sitk.Image(list(geometry.size), sitk.sitkUInt8)
    geometry.apply_to_sitk(reference)
    out = {}
    for name, mask in segments.items():
        resampled = sitk.Resample(sitk.Cast(mask, sitk.sitkUInt8), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        out[name] = sitk.GetArrayFromImage(resampled).astype(bool)
    return out, geometry


def write_segments(masks: dict[str, np.ndarray], geometry: VolumeGeometry, path: str | Path,
                   colors: dict[str, tuple[float, float, float]] | None = None) -> Path:
    """Write non-overlapping (k, j, i) masks as a Slicer ``.seg.nrrd`` without Slicer.

    One labelmap layer, segment ``n`` under label value ``n + 1``, with the header fields
    Slicer's segmentation reader uses (name, ID, layer, label value, colour, extent), on the
    full grid of ``geometry`` (not cropped), so that the file lies on its CT's grid.

    Parameters
    ----------
    masks : dict of str to ndarray
        Segment name to a bool mask of ``geometry.shape_kji``; no voxel in two segments.
    geometry : VolumeGeometry
        The grid the masks are on (the CT's).
    path : str or Path
        The file to write (compressed NRRD; it should end in ``.seg.nrrd``).
    colors : dict of str to tuple of float, optional
        RGB colours (0-1) by segment name; grey for a segment without one.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If a mask is not of the grid's shape, or two masks overlap.
    """
    path = Path(path)
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    for value, (name, mask) in enumerate(masks.items(), start=1):
        if mask.shape != tuple(geometry.shape_kji):
            raise ValueError(f"segment {name!r} has shape {mask.shape}, the grid {tuple(geometry.shape_kji)}")
        if (labels[mask] != 0).any():
            raise ValueError(f"segment {name!r} overlaps another; write overlapping segments with Slicer")
        labels[mask] = value
    image = sitk.GetImageFromArray(labels)
    geometry.apply_to_sitk(image)
    for n, (name, mask) in enumerate(masks.items()):
        extent = [0, -1] * 3  # Slicer's extent of an empty segment
        if mask.any():
            kk, jj, ii = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
            extent = [int(ii[0]), int(ii[-1]), int(jj[0]), int(jj[-1]), int(kk[0]), int(kk[-1])]
        color = (colors or {}).get(name, (0.5, 0.5, 0.5))
        terms = terminology_for(name)
        tags = f"{TERMINOLOGY_TAG}:{terms.slicer_entry()}|" if terms is not None else "|"
        for key, value in (("ID", name), ("Name", name), ("Layer", "0"), ("LabelValue", str(n + 1)),
                           ("Color", " ".join(f"{c:.6g}" for c in color)), ("Extent", " ".join(map(str, extent))),
                           ("NameAutoGenerated", "0"), ("ColorAutoGenerated", "0"), ("Tags", tags)):
            image.SetMetaData(f"Segment{n}_{key}", value)
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    sitk.WriteImage(image, str(path), useCompression=True)
    return path
