"""The snake lungs on real CT: quality guards, seeds, cropped volumes, correction."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.evaluation import dice
from LungTumorReconLib.lungs.correction import read_lung_correction
from LungTumorReconLib.lungs.snake import repropagate_lung, segment_lungs_snake
from LungTumorReconLib.io.seeds import Seed


@pytest.fixture(scope="module")
def chest_reference(data):
    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(data / "cip_chest64" / "lm-64.nrrd"))) & 255
    return {"left lung": np.isin(lm, [9, 10, 11]), "right lung": np.isin(lm, [12, 13, 14])}


@pytest.fixture(scope="module")
def chest_lungs(chest64):
    return segment_lungs_snake(chest64.array, chest64.geometry)


def test_cip_chest64_dice_and_self_stopping_propagation(chest_lungs, chest_reference):
    for name in ("right lung", "left lung"):
        assert dice(chest_lungs[name], chest_reference[name]) >= 0.95, name
        got = np.flatnonzero(chest_lungs[name].any(axis=(1, 2)))
        ref = np.flatnonzero(chest_reference[name].any(axis=(1, 2)))
        # it stopped by itself at the apex and the base, within two slices of the truth
        assert abs(got[0] - ref[0]) <= 2 and abs(got[-1] - ref[-1]) <= 2, (name, got[[0, -1]], ref[[0, -1]])
    assert not (chest_lungs["right lung"] & chest_lungs["left lung"]).any()


def test_seeded_start_gives_the_same_lungs(chest64, chest_lungs, chest_reference):
    g = chest64.geometry
    seeds = []
    for name in ("right lung", "left lung"):
        k = int(np.argmax(chest_reference[name].sum(axis=(1, 2)))) - 8  # not the automatic start slice
        j, i = np.argwhere(chest_reference[name][k])[len(np.argwhere(chest_reference[name][k])) // 2]
        seeds.append(Seed(name, tuple(float(v) for v in g.kji_to_lps(np.array([k, j, i])))))
    seeded = segment_lungs_snake(chest64.array, g, seeds)
    for name in ("right lung", "left lung"):
        assert dice(seeded[name], chest_lungs[name]) > 0.98
        assert dice(seeded[name], chest_reference[name]) >= 0.95


def test_real_tumours_lie_inside_the_lungs(data):
    cases = [
        ("pyradiomics_lung1/lung1_image.nrrd", "pyradiomics_lung1/lung1_label.nrrd", 0.0),
        ("lidc_idri_0001/dicom", "lidc_idri_0001/LIDC-IDRI-0001_small_nodule_votes.nii.gz", 1.5),
    ]
    for ct_path, label, threshold in cases:
        ct = read_ct(data / ct_path)
        lungs = segment_lungs_snake(ct.array, ct.geometry)
        tumour = read_label_on_grid(data / label, ct.geometry, threshold=threshold)
        union = lungs["right lung"] | lungs["left lung"]
        assert (union & tumour).sum() / tumour.sum() >= 0.95, ct_path


def test_cropped_volume_with_one_lung(data):
    ct = read_ct(data / "ibsi_nsclc_crop" / "dicom")
    lungs = segment_lungs_snake(ct.array, ct.geometry)
    assert list(lungs) == ["right lung"]
    assert lungs["right lung"].sum() * ct.geometry.voxel_volume_ml > 500


def test_correction_repropagates_one_lung_and_keeps_the_other(chest64, chest_lungs, chest_reference):
    k = int(np.argmax(chest_reference["right lung"].sum(axis=(1, 2))))
    corrected = chest_reference["right lung"][k]
    out = repropagate_lung(chest64.array, chest64.geometry, chest_lungs, "right lung", k, corrected)
    assert np.array_equal(out["left lung"], chest_lungs["left lung"])  # exactly as it was
    assert np.array_equal(out["right lung"][k], corrected & ~chest_lungs["left lung"][k])
    assert not (out["right lung"] & out["left lung"]).any()
    assert dice(out["right lung"], chest_reference["right lung"]) >= 0.95
    # a bad correction (a small blob) propagates a small lung: the correction really drives it
    blob = np.zeros_like(corrected)
    jj, ii = np.argwhere(corrected).mean(axis=0).astype(int)
    blob[jj - 2 : jj + 3, ii - 2 : ii + 3] = True
    small = repropagate_lung(chest64.array, chest64.geometry, chest_lungs, "right lung", k, blob)
    assert np.array_equal(small["right lung"][k], blob)
    assert np.array_equal(small["left lung"], chest_lungs["left lung"])


def test_correction_files_curve_and_label_image(tmp_path, chest64, chest_reference):
    from skimage import measure

    g = chest64.geometry
    k = 40
    mask = chest_reference["left lung"][k]
    contour = max(measure.find_contours(np.pad(mask, 1).astype(float), 0.5), key=len) - 1
    kji = np.column_stack([np.full(len(contour), k), contour])
    lps = g.kji_to_lps(kji)
    ras = lps * np.array([-1, -1, 1])
    doc = {"markups": [{"type": "ClosedCurve", "name": "left lung", "coordinateSystem": "RAS",
                        "controlPoints": [{"label": f"L-{n}", "position": list(p)} for n, p in enumerate(ras)]}]}
    curve = tmp_path / "left.mrk.json"
    curve.write_text(json.dumps(doc))
    c = read_lung_correction(curve, g)
    assert c.lung == "left lung" and c.k == k
    assert dice(c.mask, mask) > 0.9
    volume = np.zeros(g.shape_kji, np.uint8)
    volume[k] = mask
    image = sitk.GetImageFromArray(volume)
    g.apply_to_sitk(image)
    sitk.WriteImage(image, str(tmp_path / "slice.nrrd"))
    c2 = read_lung_correction(tmp_path / "slice.nrrd", g, {"left lung": chest_reference["left lung"]})
    assert c2.lung == "left lung" and c2.k == k and np.array_equal(c2.mask, mask)


@pytest.mark.parametrize("touch", [False, True])
def test_synthetic_thorax_lungs_against_exact_truth(touch):
    """Synthetic truth: Dice >= 0.97 per lung, touching lungs kept apart, airways outside."""
    from scipy import ndimage as ndi

    from LungTumorReconDev.synthetic_thorax import make_thorax

    case = make_thorax(size=(160, 160, 70), spacing=(2.0, 2.0, 4.0), tumors=("solid",), seed=4, lungs_touch=touch)
    if touch:  # the generator really makes them touch
        assert (ndi.binary_dilation(case.labels["right lung"]) & case.labels["left lung"]).any()
    lungs = segment_lungs_snake(case.ct, case.geometry)
    for name in ("right lung", "left lung"):
        assert dice(lungs[name], case.labels[name]) >= 0.97, name
    union = lungs["right lung"] | lungs["left lung"]
    airways = case.labels["airways"]
    assert (union & airways).sum() / airways.sum() < 0.15  # trachea and main bronchi stay outside
    tumour = case.labels["tumor"]
    assert (union & tumour).sum() / tumour.sum() >= 0.95
    # near the base a lung shows as several islands on one slice: those slices are found too
    for name in ("right lung", "left lung"):
        multi = [k for k in range(case.ct.shape[0]) if ndi.label(case.labels[name][k])[1] > 1]
        assert multi, "the generator should make multi-island slices"
        truth = case.labels[name][multi]
        assert (lungs[name][multi] & truth).sum() / truth.sum() >= 0.8, name
        assert max(ndi.label(lungs[name][k])[1] for k in multi) > 1, name
