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
