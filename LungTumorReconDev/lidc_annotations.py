"""Per-reader nodule masks from a LIDC-IDRI reader XML (four readers' polygon contours).

Each ``readingSession`` is one reader; each ``roi`` of an ``unblindedReadNodule`` is a contour
on the slice at ``imageZposition`` whose ``edgeMap`` points are pixel (x = column, y = row)
coordinates. Inclusion contours are filled (the contour pixels count too, as in LIDC's own
"covered by the filled contour"); exclusion contours are cut out. Single-point nodules
(< 3 mm) have no area and are skipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.lungs.snake import fill_polygon

_NS = {"l": "http://www.nih.gov"}


def read_lidc_reader_masks(xml_path: str | Path, geometry: VolumeGeometry) -> list[np.ndarray]:
    """One (k, j, i) bool mask per reader: the union of that reader's nodule contours."""
    root = ET.parse(xml_path).getroot()
    masks = []
    for session in root.findall("l:readingSession", _NS):
        mask = np.zeros(geometry.shape_kji, dtype=bool)
        cut = np.zeros(geometry.shape_kji, dtype=bool)
        for roi in session.findall("l:unblindedReadNodule/l:roi", _NS):
            points = np.array(
                [[float(e.findtext("l:yCoord", namespaces=_NS)), float(e.findtext("l:xCoord", namespaces=_NS))]
                 for e in roi.findall("l:edgeMap", _NS)]
            )
            if len(points) < 3:
                continue
            z = float(roi.findtext("l:imageZposition", namespaces=_NS))
            k = int(np.rint(geometry.lps_to_kji(np.array([geometry.origin[0], geometry.origin[1], z]))[0]))
            if not 0 <= k < geometry.shape_kji[0]:
                continue
            region = fill_polygon(points, geometry.shape_kji[1:])
            rows = np.clip(points[:, 0].astype(int), 0, geometry.shape_kji[1] - 1)
            cols = np.clip(points[:, 1].astype(int), 0, geometry.shape_kji[2] - 1)
            region[rows, cols] = True
            target = mask if roi.findtext("l:inclusion", namespaces=_NS).strip().upper() == "TRUE" else cut
            target[k] |= region
        masks.append(mask & ~cut)
    return masks
