"""The readers on the real CT in ../shared/data, and every bad input they must refuse."""

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LungTumorReconLib.io.ct import read_ct, read_label_on_grid, write_image
from LungTumorReconLib.errors import InputError


def test_lidc_dicom_folder_matches_its_nifti(data):
    ct = read_ct(data / "lidc_idri_0001" / "dicom")
    assert ct.array.shape == (16, 512, 512)
    assert np.allclose(ct.geometry.spacing, (0.703125, 0.703125, 2.5))
    assert ct.series_uid and ct.series_uid.startswith("1.3.6.1.4.1.14519")
    assert ct.warnings == []
    nifti = read_ct(data / "lidc_idri_0001" / "LIDC-IDRI-0001_small_ct.nii.gz")
    assert np.array_equal(ct.array, nifti.array)
    assert np.allclose(ct.geometry.origin, nifti.geometry.origin, atol=1e-4)
    assert np.allclose(ct.geometry.direction_matrix, nifti.geometry.direction_matrix)
    assert ct.array.min() < -900  # rescaled to HU


def test_ibsi_dicom_folder_ignores_rtstruct(data):
    ct = read_ct(data / "ibsi_nsclc_crop" / "dicom")  # image/ and mask/ (RTSTRUCT) beneath
    assert ct.array.shape == (60, 201, 204)
    assert ct.warnings == []
    nifti = read_ct(data / "ibsi_nsclc_crop" / "nifti" / "phantom.nii.gz")
    assert np.array_equal(ct.array, nifti.array)
    assert np.allclose(ct.geometry.origin, nifti.geometry.origin, atol=1e-3)


def test_nrrd_keeps_geometry(data):
    ct = read_ct(data / "pyradiomics_lung1" / "lung1_image.nrrd")
    assert ct.array.shape == (48, 512, 512) and ct.array.dtype == np.int16
    assert np.allclose(ct.geometry.spacing, (0.5703125, 0.5703125, 5.0))
    assert np.allclose(ct.geometry.origin, (-146.0, -325.0, -777.5))
    chest = read_ct(data / "cip_chest64" / "ct-64.nrrd")
    assert chest.array.shape == (79, 64, 64)


def test_metaimage_round_trip(tmp_path, chest64):
    path = tmp_path / "ct.mha"
    image = chest64.to_sitk()
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # a rotated grid survives too
    sitk.WriteImage(image, str(path))
    ct = read_ct(path)
    assert np.array_equal(ct.array, chest64.array)
    assert np.allclose(ct.geometry.direction, (0, 1, 0, -1, 0, 0, 0, 0, 1))


def test_tumor_mask_is_resampled_in_patient_space(data, chest64, tmp_path):
    mask = np.zeros(chest64.geometry.shape_kji, dtype=np.uint8)
    mask[30:40, 20:30, 15:25] = 3
    image = sitk.GetImageFromArray(mask)
    chest64.geometry.apply_to_sitk(image)
    # the same mask on a grid with half the spacing lands on the same voxels
    fine = sitk.Resample(image, [s * 2 for s in image.GetSize()], sitk.Transform(), sitk.sitkNearestNeighbor,
                         [o - s / 4 for o, s in zip(image.GetOrigin(), image.GetSpacing())],
                         [s / 2 for s in image.GetSpacing()], image.GetDirection())
    sitk.WriteImage(fine, str(tmp_path / "fine.nii.gz"))
    got = read_label_on_grid(tmp_path / "fine.nii.gz", chest64.geometry)
    assert np.array_equal(got, mask > 0)


# -- DICOM folders built from the LIDC slices -----------------------------------------


@pytest.fixture()
def lidc_copy(data, tmp_path):
    folder = tmp_path / "dicom"
    shutil.copytree(data / "lidc_idri_0001" / "dicom", folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def _sorted_files(folder):
    files = list(folder.iterdir())
    return sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))


def test_missing_slice_is_resampled_with_a_warning(lidc_copy):
    full = read_ct(lidc_copy)
    files = _sorted_files(lidc_copy)
    files[7].unlink()
    ct = read_ct(lidc_copy)
    assert any("irregular slice spacing" in w for w in ct.warnings)
    assert ct.array.shape == full.array.shape
    assert np.allclose(ct.geometry.spacing, full.geometry.spacing)
    expected = (full.array[6].astype(float) + full.array[8]) / 2
    assert np.abs(ct.array[7] - expected).max() <= 1
    assert np.array_equal(ct.array[8], full.array[8])


def test_several_ct_series_take_the_largest_with_a_warning(lidc_copy):
    for f in _sorted_files(lidc_copy)[:5]:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.save_as(f)
    ct = read_ct(lidc_copy)
    assert ct.array.shape[0] == 11
    assert any("2 CT series" in w for w in ct.warnings)


def test_inconsistent_orientation_is_refused(lidc_copy):
    f = _sorted_files(lidc_copy)[3]
    ds = pydicom.dcmread(f)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, -0.6]
    ds.save_as(f)
    with pytest.raises(InputError, match="orientation"):
        read_ct(lidc_copy)


def test_inconsistent_size_is_refused(lidc_copy):
    f = _sorted_files(lidc_copy)[3]
    ds = pydicom.dcmread(f)
    pixels = ds.pixel_array[:256, :256].copy()
    ds.Rows, ds.Columns = 256, 256
    ds.PixelData = pixels.tobytes()
    ds.save_as(f)
    with pytest.raises(InputError, match="size"):
        read_ct(lidc_copy)


@pytest.mark.parametrize("damage", ["position", "vr", "truncated header"])
def test_damaged_slice_header_is_refused_naming_the_file(lidc_copy, damage):
    """pydicom decodes values lazily: a damaged value must still be one line, not a traceback,
    and the slice must not be dropped without a word."""
    f = _sorted_files(lidc_copy)[4]
    raw = bytearray(f.read_bytes())
    if damage == "position":  # a letter inside ImagePositionPatient's decimal strings
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        text = "\\".join(str(v) for v in ds["ImagePositionPatient"].value).encode()
        at = raw.find(str(ds["ImagePositionPatient"].value[0]).encode())
        assert at > 0, text
        raw[at + 1] = ord("x")
    elif damage == "vr":  # explicit VR of Columns (0028,0011) replaced by an unknown one
        at = raw.find(b"\x28\x00\x11\x00")
        raw[at + 4:at + 6] = b"Zq"
    else:
        raw = raw[:300]
    f.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=f"DICOM file {f.name} (is damaged|has a damaged header)") as info:
        read_ct(lidc_copy)
    assert "\n" not in str(info.value)


def test_non_ct_modality_is_refused(lidc_copy):
    for f in lidc_copy.iterdir():
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.save_as(f)
    with pytest.raises(InputError, match="no CT image series.*MR"):
        read_ct(lidc_copy)


def test_empty_and_unreadable_folders_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty"):
        read_ct(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not DICOM")
    with pytest.raises(InputError, match="no readable DICOM"):
        read_ct(junk)


def test_rtstruct_alone_is_refused(data):
    with pytest.raises(InputError, match="no readable DICOM image series"):
        read_ct(data / "ibsi_nsclc_crop" / "dicom" / "mask")


def test_not_an_image_file_is_refused(tmp_path):
    p = tmp_path / "ct.nrrd"
    p.write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        read_ct(p)


def test_2d_image_is_refused(tmp_path):
    p = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.Image([64, 64], sitk.sitkInt16) - 1000, str(p))
    with pytest.raises(InputError, match="2D"):
        read_ct(p)
    p3 = tmp_path / "one_slice.nrrd"
    sitk.WriteImage(sitk.Image([64, 64, 1], sitk.sitkInt16) - 1000, str(p3))
    with pytest.raises(InputError, match="2D"):
        read_ct(p3)


def test_image_without_air_is_not_ct(tmp_path):
    p = tmp_path / "mr.nii.gz"
    sitk.WriteImage(sitk.Image([32, 32, 8], sitk.sitkInt16) + 200, str(p))
    with pytest.raises(InputError, match="does not look like a CT"):
        read_ct(p)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_ct(tmp_path / "nothing.nrrd")


def test_gantry_tilt_is_regularised_onto_an_orthogonal_grid(lidc_copy):
    full = read_ct(lidc_copy)
    files = _sorted_files(lidc_copy)
    row_spacing = float(pydicom.dcmread(files[0], stop_before_pixels=True).PixelSpacing[0])
    for i, f in enumerate(files):  # each slice one row further along y: a tilted gantry
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + i * row_spacing, z]
        ds.save_as(f)
    ct = read_ct(lidc_copy)
    assert any("gantry tilt" in w for w in ct.warnings)
    assert ct.geometry == full.geometry  # the same orthogonal grid, anchored at the first slice
    for k in (3, 8):  # slice k moved k rows: the same anatomy at the same place in patient space
        assert np.array_equal(ct.array[k, k + 10:200], full.array[k, 10:200 - k])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_voxels_are_refused(tmp_path, chest64, bad):
    array = chest64.array.astype(np.float32)
    array[5, 5:8, 5:8] = bad
    write_image(array, chest64.geometry, tmp_path / "bad.nrrd")
    with pytest.raises(InputError, match="9 voxels are NaN or infinite"):
        read_ct(tmp_path / "bad.nrrd")


def test_oblique_axial_grid_is_kept_and_non_axial_or_sheared_grids_are_refused(tmp_path, chest64):
    from dataclasses import replace

    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    for name, direction, error in (
        ("oblique", (c, -s, 0, s, c, 0, 0, 0, 1), None),  # rotated about head-foot: fine
        ("tilted", (1, 0, 0, 0, c, -s, 0, s, c), None),  # 20 degrees off axial: fine
        ("sagittal", (0, 0, 1, 1, 0, 0, 0, 1, 0), "not axial"),
        ("sheared", (1, 0, 0, 0.3, 1, 0, 0, 0, 1), "not orthogonal"),
    ):
        write_image(chest64.array, replace(chest64.geometry, direction=direction), tmp_path / f"{name}.nrrd")
        if error is None:
            assert np.allclose(read_ct(tmp_path / f"{name}.nrrd").geometry.direction, direction)
        else:
            with pytest.raises(InputError, match=error):
                read_ct(tmp_path / f"{name}.nrrd")
