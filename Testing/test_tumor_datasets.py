"""The deep segmenters' dataset adapters, each on data it really reads here."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LungTumorReconDev.tumor_datasets import (
    find_rtstruct,
    read_lidc_case,
    read_msd_patches,
    read_msd_task06,
    read_nsclc_radiomics_case,
    read_real_case,
    real_like_synthetic_case,
    real_like_tumor_plan,
    synthetic_tumor_case,
)
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import read_ct, read_label_on_grid


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_nsclc_rtstruct_gtv_matches_the_published_mask(data):
    case = read_nsclc_radiomics_case(data / "ibsi_nsclc_crop" / "dicom")
    reference = read_label_on_grid(data / "ibsi_nsclc_crop" / "nifti" / "mask.nii.gz", case.geometry)
    assert _dice(case.mask, reference) > 0.99
    assert case.mask.sum() * case.geometry.voxel_volume_ml == pytest.approx(359, abs=3)  # the README's 359 mL
    assert case.hu.min() < -900 and case.hu.max() > 0  # HU, not raw pixel values


def test_rtstruct_without_the_roi_names_what_it_has(data):
    assert find_rtstruct(data / "ibsi_nsclc_crop" / "dicom").parent.name == "mask"
    with pytest.raises(InputError, match="no ROI 'GTV-2'.*GTV-1"):
        read_nsclc_radiomics_case(data / "ibsi_nsclc_crop" / "dicom", roi_name="GTV-2")
    with pytest.raises(InputError, match="no RTSTRUCT"):
        find_rtstruct(data / "ibsi_nsclc_crop" / "dicom" / "image")


def test_lidc_consensus_matches_the_reader_votes(data):
    folder = data / "lidc_idri_0001"
    two = read_lidc_case(folder / "dicom", folder / "xml" / "69.xml", min_readers=2)
    votes = read_label_on_grid(folder / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", two.geometry, threshold=1.5)
    assert _dice(two.mask, votes) > 0.99
    one = read_lidc_case(folder / "dicom", folder / "xml" / "69.xml", min_readers=1).mask
    four = read_lidc_case(folder / "dicom", folder / "xml" / "69.xml", min_readers=4).mask
    assert one.sum() > two.mask.sum() > four.sum() > 0
    assert (four <= two.mask).all() and (two.mask <= one).all()


def test_msd_task06_layout_written_here(tmp_path, data):
    """A small copy in MSD Task06's layout (dataset.json, imagesTr/, labelsTr/), written by the test."""
    ct = read_ct(data / "pyradiomics_lung1" / "lung1_image.nrrd")
    label = read_label_on_grid(data / "pyradiomics_lung1" / "lung1_label.nrrd", ct.geometry)
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    sitk.WriteImage(ct.to_sitk(), str(tmp_path / "imagesTr" / "lung_001.nii.gz"))
    image = sitk.GetImageFromArray(label.astype(np.uint8))
    ct.geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(tmp_path / "labelsTr" / "lung_001.nii.gz"))
    (tmp_path / "dataset.json").write_text(json.dumps({
        "name": "Lung", "labels": {"0": "background", "1": "cancer"},
        "training": [{"image": "./imagesTr/lung_001.nii.gz", "label": "./labelsTr/lung_001.nii.gz"}], "test": []}))
    cases = read_msd_task06(tmp_path)
    assert [c.name for c in cases] == ["lung_001"]
    assert cases[0].mask.sum() == label.sum() == 837
    assert cases[0].geometry.spacing == pytest.approx(ct.geometry.spacing)
    with pytest.raises(InputError, match="dataset.json"):
        read_msd_task06(tmp_path / "imagesTr")


def test_synthetic_case_has_exact_tumour_and_lungs():
    case = synthetic_tumor_case(3, ("solid", "spiculated"), size=(128, 128, 32), spacing=(2.0, 2.0, 5.0))
    assert case.mask.any() and case.lungs is not None and (case.mask <= case.lungs | case.mask).all()
    k, j, i = case.geometry.nearest_kji(np.array(case.seed_lps))
    assert case.mask[k, j, i]


def test_msd_patches(data, tmp_path):
    images, masks = read_msd_patches(data / "msd_lung_patches" / "val_patches.h5")
    assert images.shape == masks.shape == (130, 48, 48) and masks.dtype == bool
    assert 0.0 <= images.min() and images.max() <= 1.0 and 0.01 < masks.mean() < 0.2
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="HDF5"):
        read_msd_patches(bad)


def test_real_cases_by_name(data):
    lung1 = read_real_case("lung1", data)
    assert lung1.mask.sum() == 837
    k, j, i = lung1.geometry.nearest_kji(np.array(lung1.seed_lps))
    assert lung1.mask[k, j, i]
    with pytest.raises(InputError, match="unknown real case"):
        read_real_case("lung2", data)


def test_the_training_sizes_cover_real_tumours_log_uniformly():
    rng = np.random.default_rng(0)
    plans = [real_like_tumor_plan(rng, count=1) for _ in range(3000)]
    diameters = np.array([2 * radii[0] for _, radii in plans])
    kinds = [k[0] for k, _ in plans]
    assert diameters.min() >= 4.0 and diameters.max() <= 100.0
    assert abs(np.median(diameters) - 20.0) < 2.0  # log-uniform 4-100 mm: median sqrt(4 * 100)
    assert (diameters < 10).mean() > 0.25 and (diameters > 50).mean() > 0.15
    big = diameters > 44
    assert all(k == "attached-mass" for k, b in zip(kinds, big) if b)  # no lung holds them free


def test_a_real_like_synthetic_case_has_its_truth_and_a_real_grid():
    case = real_like_synthetic_case(7)
    sx, sy, sz = case.geometry.spacing
    assert 0.5 <= sx == sy <= 1.0 and 0.6 <= sz <= 5.0
    assert case.mask.any() and len(case.tumors) == 2 and case.lungs is not None
    assert not (case.mask & ~case.lungs).any()
