"""The synthetic thorax: grid and determinism, truth masks, HU, noise and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from LungTumorReconDev.synthetic_thorax import CARINA_LPS, KERNELS, TUMOR_KINDS, make_thorax

REQUIRED_LABELS = ("right lung", "left lung", "tumor", "airways", "body")


@pytest.fixture(scope="module")
def default_case():
    return make_thorax()


@pytest.fixture(scope="module")
def kinds_case():
    """Every tumour kind, on anisotropic voxels."""
    return make_thorax(size=(192, 160, 60), spacing=(1.9, 2.1, 5.0), tumors=TUMOR_KINDS, seed=3)


@pytest.fixture(scope="module")
def touch_case():
    return make_thorax(size=(128, 112, 48), spacing=(2.8, 3.2, 6.0), lungs_touch=True)


def lungs(case) -> np.ndarray:
    return case.labels["right lung"] | case.labels["left lung"]


def slice_z(case) -> np.ndarray:
    g = case.geometry
    return g.origin[2] + g.spacing[2] * np.arange(g.size[2])


def test_grid_dtype_and_labels(default_case):
    c = default_case
    assert c.ct.dtype == np.int16
    assert c.ct.shape == (80, 256, 256) == c.geometry.shape_kji
    assert c.geometry.size == (256, 256, 80)
    assert c.geometry.spacing == (1.4, 1.4, 4.0)
    for name in REQUIRED_LABELS:
        assert c.labels[name].dtype == bool
        assert c.labels[name].shape == c.ct.shape
    assert c.ct.min() >= -1024 and c.ct.max() <= 3071
    outside = ndi.binary_erosion(~c.labels["body"], iterations=2)
    assert abs(np.median(c.ct[outside]) + 1000) < 10  # air around the patient
    # the field of view is centred on the thorax
    centre = c.geometry.kji_to_lps(np.argwhere(c.labels["body"]).mean(axis=0))
    assert abs(centre[0]) < 10 and abs(centre[2]) < 10


def test_deterministic_for_a_seed():
    grid = dict(size=(64, 56, 24), spacing=(5.0, 5.5, 12.0), tumors=("solid", "spiculated"))
    a, b = make_thorax(seed=5, **grid), make_thorax(seed=5, **grid)
    np.testing.assert_array_equal(a.ct, b.ct)
    for name in a.labels:
        np.testing.assert_array_equal(a.labels[name], b.labels[name])
    assert a.tumors == b.tumors and a.seeds == b.seeds
    assert not np.array_equal(make_thorax(seed=6, **grid).ct, a.ct)


def test_same_anatomy_on_anisotropic_coarser_voxels(default_case):
    fine = default_case
    coarse = make_thorax(size=(120, 100, 64), spacing=(3.0, 3.6, 5.0))
    for side in ("right lung", "left lung"):
        fine_ml = fine.labels[side].sum() * fine.geometry.voxel_volume_ml
        coarse_ml = coarse.labels[side].sum() * coarse.geometry.voxel_volume_ml
        assert 2000 < fine_ml < 4000
        assert abs(coarse_ml / fine_ml - 1) < 0.03
    assert [t["centre_lps"] for t in coarse.tumors] == [t["centre_lps"] for t in fine.tumors]
    for t_fine, t_coarse in zip(fine.tumors, coarse.tumors):
        assert abs(t_coarse["volume_ml"] / t_fine["volume_ml"] - 1) < 0.3
    assert coarse.seeds["right lung"] == fine.seeds["right lung"]


def test_512x512x150_in_under_30_s():
    t0 = time.perf_counter()
    case = make_thorax(size=(512, 512, 150), spacing=(0.7, 0.7, 2.0))
    seconds = time.perf_counter() - t0
    assert case.ct.shape == (150, 512, 512)
    assert seconds < 30, f"{seconds:.1f} s"


def test_lungs_disjoint_and_on_their_sides(default_case):
    c = default_case
    right, left = c.labels["right lung"], c.labels["left lung"]
    assert right.any() and left.any()
    assert not (right & left).any()
    x_right = c.geometry.kji_to_lps(np.argwhere(right).mean(axis=0))[0]
    x_left = c.geometry.kji_to_lps(np.argwhere(left).mean(axis=0))[0]
    assert x_right < -40 and x_left > 40  # patient right is LPS -x
    # separated by the mediastinum unless asked otherwise
    assert not (ndi.binary_dilation(right) & ndi.binary_dilation(left)).any()


def test_lungs_touch_at_the_anterior_junction(touch_case):
    c = touch_case
    right, left = c.labels["right lung"], c.labels["left lung"]
    assert not (right & left).any()
    contact = ndi.binary_dilation(right) & ndi.binary_dilation(left)
    assert contact.any()
    y = c.geometry.kji_to_lps(np.argwhere(contact))[:, 1]
    assert y.max() < -20  # in front of the great vessels: the anterior junction


def test_tumours_inside_the_lungs(kinds_case):
    tumor = kinds_case.labels["tumor"]
    assert tumor.sum() > 100
    assert (tumor & lungs(kinds_case)).sum() >= 0.99 * tumor.sum()


def test_airways_below_the_carina_are_not_lung(default_case):
    c = default_case
    airways = c.labels["airways"]
    below = airways & (slice_z(c) < CARINA_LPS[2])[:, None, None]
    assert below.sum() > 20  # the main bronchi
    assert not (airways & lungs(c)).any()
    assert np.median(c.ct[airways]) < -600  # air in the lumen


def test_hu_of_the_tissues(default_case):
    c = default_case
    parenchyma = lungs(c) & ~c.labels["tumor"]
    assert -900 <= np.median(c.ct[parenchyma]) <= -780
    body = c.labels["body"] & ~lungs(c)
    soft = body & (c.ct > -50) & (c.ct < 150)
    assert 0 <= np.median(c.ct[soft]) <= 60
    fat = body & (c.ct > -200) & (c.ct <= -50)
    assert -120 <= np.median(c.ct[fat]) <= -70
    assert 30 <= np.median(c.ct[c.labels["aorta"]]) <= 60
    assert np.median(c.ct[c.labels["ribs"]]) > 300
    # the vertebral body, posterior midline just in front of the spinal canal
    k, j, i = c.geometry.nearest_kji(np.array([0.0, 52.0, -20.0]))
    assert np.median(c.ct[k, j - 3 : j + 4, i - 3 : i + 4]) > 250


def test_every_tumour_kind(kinds_case):
    c = kinds_case
    assert [t["kind"] for t in c.tumors] == list(TUMOR_KINDS)
    assert sum(t["voxels"] for t in c.tumors) == c.labels["tumor"].sum()
    kji = np.indices(c.ct.shape)
    mm = np.asarray(c.geometry.spacing[::-1])[:, None, None, None]
    for t in c.tumors:
        assert t["voxels"] > 0 and t["volume_ml"] > 0
        assert t["side"] in ("right lung", "left lung")
        centre = np.asarray(c.geometry.lps_to_kji(np.array(t["centre_lps"])))[:, None, None, None]
        near = np.sqrt((((kji - centre) * mm) ** 2).sum(axis=0)) < 2.2 * t["radius_mm"]
        hu = c.ct[c.labels["tumor"] & near]
        assert hu.size == t["voxels"]
        if t["kind"] == "ground-glass":
            assert -750 < np.median(hu) < -300
        elif t["kind"] == "part-solid":
            assert np.mean(hu > -150) > 0.1 and np.mean(hu < -300) > 0.1
        else:
            assert np.median(hu) > -200


def test_seeds_lie_in_their_structures(default_case, kinds_case):
    for case in (default_case, kinds_case):
        assert {"right lung", "left lung", "tumor"} <= set(case.seeds)
        for name, lps in case.seeds.items():
            label = "tumor" if name.startswith("tumor") else name
            assert case.labels[label][case.geometry.nearest_kji(np.array(lps))], name
        assert [label for label, _ in case.seed_points()].count("tumor") == len(case.tumors)


def test_noise_level_in_the_aorta(default_case):
    grid = dict(size=(128, 128, 40), spacing=(2.8, 2.8, 8.0), tumors=())
    for case, noise_hu in ((default_case, 20.0), (make_thorax(noise_hu=35.0, **grid), 35.0)):
        inner = ndi.binary_erosion(case.labels["aorta"], iterations=2)
        assert inner.sum() > 50
        assert abs(case.ct[inner].std() / noise_hu - 1) < 0.3
    quiet = make_thorax(noise_hu=0.0, **grid)
    assert not quiet.labels["tumor"].any() and "tumor" not in quiet.seeds
    assert quiet.ct[ndi.binary_erosion(quiet.labels["aorta"], iterations=2)].std() < 3


def test_smaller_field_of_view_crops_the_thorax():
    case = make_thorax(size=(100, 100, 30), spacing=(1.4, 1.4, 4.0))  # 140 x 140 x 120 mm
    assert case.labels["body"].mean() > 0.95
    for side in ("right lung", "left lung"):
        assert case.labels[side].any()
        assert case.geometry.contains_lps(np.array(case.seeds[side]))
        assert case.labels[side][case.geometry.nearest_kji(np.array(case.seeds[side]))]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        make_thorax(tumors=("round",))
    with pytest.raises(ValueError):
        make_thorax(size=(0, 10, 10))


def test_attached_masses_take_the_given_size_and_dense_lung_beside_them_is_not_tumour():
    grid = dict(size=(200, 200, 80), spacing=(1.5, 1.5, 3.0))
    dense_ml = []
    for seed in range(4):
        case = make_thorax(tumors=("attached-mass", "solid"), tumor_radii=(30.0, 3.0), seed=seed, **grid)
        assert [t["radius_mm"] for t in case.tumors] == [30.0, 3.0]
        assert 20.0 < case.tumors[0]["volume_ml"] < 4 / 3 * np.pi * 3.5 ** 3  # cut by the pleura it lies against
        assert case.tumors[1]["volume_ml"] < 0.5
        tumour = case.labels["tumor"]
        # the mass touches what is not lung: the chest wall, the mediastinum or the diaphragm
        assert (ndi.binary_dilation(tumour, iterations=2) & ~lungs(case) & case.labels["body"]).any()
        near = ndi.distance_transform_edt(~tumour, sampling=case.geometry.spacing[::-1]) < 40.0
        dense = lungs(case) & ~tumour & near & (case.ct > -250)
        dense_ml.append(ndi.binary_opening(dense, iterations=2).sum() * case.geometry.voxel_volume_ml)
    # some masses have atelectasis or consolidation beside them (vessels alone make little)
    assert max(dense_ml) > 5.0 and min(dense_ml) < 2.0


def test_a_sharp_kernel_has_finer_noise_than_a_smooth_one():
    grid = dict(size=(128, 128, 20), spacing=(0.7, 0.7, 5.0), tumors=(), noise_hu=30.0)
    correlation = {}
    for name in ("sharp", "smooth"):
        case = make_thorax(noise_grain_mm=KERNELS[name]["grain_mm"], blur_mm=0.0, **grid)
        inner = ndi.binary_erosion(case.labels["body"], iterations=4) & (np.abs(case.ct.astype(float) + 100) < 80)
        noise = case.ct - ndi.median_filter(case.ct.astype(float), size=(1, 7, 7))
        a, b = noise[:, :, :-1][inner[:, :, :-1] & inner[:, :, 1:]], noise[:, :, 1:][inner[:, :, :-1] & inner[:, :, 1:]]
        correlation[name] = float(np.corrcoef(a, b)[0, 1])
    assert correlation["sharp"] + 0.25 < correlation["smooth"], correlation


def test_rejects_bad_radii():
    with pytest.raises(ValueError, match="tumor_radii"):
        make_thorax(tumors=("solid",), tumor_radii=(3.0, 4.0))
    with pytest.raises(ValueError, match="tumor_radii"):
        make_thorax(tumors=("solid",), tumor_radii=(80.0,))
