"""The threshold lung baseline on real CT: a regression guard, not a benchmark (see make bench)."""

import numpy as np
import SimpleITK as sitk

from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.evaluation import dice
from LungTumorReconLib.lungs.threshold import segment_lungs_threshold


def test_cip_chest64_lungs_against_the_label_map(data, chest64):
    lungs = segment_lungs_threshold(chest64.array, chest64.geometry)
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(data / "cip_chest64" / "lm-64.nrrd"))) & 255
    assert dice(lungs["left lung"], np.isin(lm, [9, 10, 11])) > 0.95
    assert dice(lungs["right lung"], np.isin(lm, [12, 13, 14])) > 0.95
    assert not (lungs["left lung"] & lungs["right lung"]).any()


def test_lidc_mass_lies_inside_the_lungs(data):
    ct = read_ct(data / "lidc_idri_0001" / "dicom")
    lungs = segment_lungs_threshold(ct.array, ct.geometry)
    votes = read_label_on_grid(data / "lidc_idri_0001" / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", ct.geometry,
                               threshold=1.5)
    union = lungs["right lung"] | lungs["left lung"]
    assert (union & votes).sum() / votes.sum() > 0.95
    # the mass is in the left lower lobe (LPS +x)
    assert (lungs["left lung"] & votes).sum() > 0.9 * votes.sum()
