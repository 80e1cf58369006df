"""Earlier results as DICOM input (issue 23, item 3): a DICOM SEG or RTSTRUCT as --tumor-mask or
--lungs-from, read onto the CT's grid, and refused when it belongs to another series or lies outside.

Real data from ../shared/data: the IBSI NSCLC crop (CT series + RTSTRUCT ``GTV-1`` + the same GTV
as NIfTI) and LIDC-IDRI-0001's DICOM slices, from which SEGs are made here with highdicom.
"""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from conftest import DATA

from LungTumorReconLib.cli import FLAGS, main
from LungTumorReconLib.dicom import terminology as T
from LungTumorReconLib.dicom.masks import is_dicom_object, name_for_label, read_dicom_segments
from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.run import load_inputs

IBSI = DATA / "ibsi_nsclc_crop"
IBSI_CT = IBSI / "dicom" / "image"
IBSI_RTSTRUCT = IBSI / "dicom" / "mask" / "DCM_RS_00060.dcm"
IBSI_MASK = IBSI / "nifti" / "mask.nii.gz"
LIDC = DATA / "lidc_idri_0001"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.fixture(scope="module")
def ibsi():
    if not IBSI_RTSTRUCT.is_file():
        pytest.skip(f"IBSI NSCLC crop not found at {IBSI}")
    ct = read_ct(IBSI_CT)
    return ct, read_label_on_grid(IBSI_MASK, ct.geometry)


@pytest.fixture(scope="module")
def lidc():
    """LIDC-IDRI-0001's CT (read once), its slices as pydicom datasets, and each slice's k."""
    if not (LIDC / "dicom").is_dir():
        pytest.skip(f"LIDC-IDRI-0001 not found at {LIDC}")
    ct = read_ct(LIDC / "dicom")
    sources = [pydicom.dcmread(p) for p in sorted((LIDC / "dicom").glob("*.dcm"))]
    ks = [int(round(ct.geometry.lps_to_kji(np.asarray(s.ImagePositionPatient, float))[0])) for s in sources]
    nodule = read_label_on_grid(LIDC / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", ct.geometry, threshold=1)  # >= 2
    assert sorted(ks) == list(range(ct.geometry.shape_kji[0])) and nodule.any()
    return ct, sources, ks, nodule


def _make_seg(lidc, path, segments):
    """A highdicom SEG of the LIDC slices; ``segments``: (label, category, type, modifier, (k, j, i) mask)."""
    import highdicom as hd

    ct, sources, ks, _ = lidc
    descriptions = []
    for number, (label, category, type_, modifier, _) in enumerate(segments, start=1):
        description = hd.seg.SegmentDescription(number, label, category.concept(), type_.concept(), "MANUAL")
        if modifier is not None:
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                modifier.concept()]
        descriptions.append(description)
    pixels = np.stack([np.stack([s[-1][k] for s in segments], axis=-1) for k in ks]).astype(np.uint8)
    seg = hd.seg.Segmentation(sources, pixels, "BINARY", descriptions, hd.UID(), 1, hd.UID(), 1, "test", "test",
                              "0", "0")
    seg.save_as(path)
    return path


def _box(shape, k, j, i) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[k, j, i] = True
    return mask


@pytest.fixture(scope="module")
def lidc_seg(lidc, tmp_path_factory):
    """A SEG with the nodule (coded Nodule), a 'right lung' box (coded Lung, Right) and a second
    lesion known by its label only; returns (path, {name: mask expected})."""
    ct, _, _, nodule = lidc
    shape = ct.geometry.shape_kji
    lung = _box(shape, slice(2, 12), slice(150, 300), slice(60, 200))
    lesion = _box(shape, slice(12, 14), slice(300, 320), slice(300, 330))
    unknown = T.Code("99TEST", "42", "Something else")
    path = _make_seg(lidc, tmp_path_factory.mktemp("seg") / "seg.dcm", [
        ("nodule A", T.MORPHOLOGICALLY_ALTERED_STRUCTURE, T.NODULE, None, nodule),
        ("R", T.ANATOMICAL_STRUCTURE, T.LUNG, T.RIGHT, lung),
        ("Lesion 2", T.MORPHOLOGICALLY_ALTERED_STRUCTURE, unknown, None, lesion),
    ])
    return path, {TUMOR: nodule | lesion, RIGHT_LUNG: lung}


def test_ibsi_rtstruct_matches_its_nifti_mask(ibsi):
    ct, reference = ibsi
    assert is_dicom_object(IBSI_RTSTRUCT) == "RTSTRUCT"
    mask = read_dicom_segments(IBSI_RTSTRUCT, ct, roi="gtv-1", tumor_only=True)[TUMOR]
    dice = _dice(mask, reference)
    print(f"IBSI RTSTRUCT GTV-1 vs nifti/mask.nii.gz: Dice {dice:.4f} ({mask.sum()} vs {reference.sum()} voxels)")
    assert dice >= 0.95
    # the single ROI is the tumour without --roi; for --lungs-from it is the tumour by its name (GTV)
    assert np.array_equal(read_dicom_segments(IBSI_RTSTRUCT, ct, tumor_only=True)[TUMOR], mask)
    assert list(read_dicom_segments(IBSI_RTSTRUCT, ct)) == [TUMOR]


def test_rtstruct_on_a_ct_from_nifti_is_checked_by_geometry_only(ibsi):
    ct = read_ct(IBSI / "nifti" / "phantom.nii.gz")
    assert ct.series_uid is None
    mask = read_dicom_segments(IBSI_RTSTRUCT, ct, tumor_only=True)[TUMOR]
    assert _dice(mask, read_label_on_grid(IBSI_MASK, ct.geometry)) >= 0.95


def test_load_inputs_takes_an_rtstruct_as_tumour_mask(ibsi):
    _, reference = ibsi
    inputs = load_inputs(IBSI_CT, PipelineOptions(tumor="none", tumor_mask_path=IBSI_RTSTRUCT, roi="GTV-1"))
    assert _dice(inputs.tumor_mask, reference) >= 0.95
    with pytest.raises(UnavailableError) as info:  # an ROI name with a mask that has none
        load_inputs(IBSI_CT, PipelineOptions(tumor="none", tumor_mask_path=IBSI_MASK, roi="GTV-1"))
    assert info.value.describe(FLAGS).startswith("--roi: ")


@pytest.mark.parametrize("axis", [0, 2])  # beside the CT's slices (x), beyond its last slice (z)
def test_rtstruct_outside_the_ct_is_refused(ibsi, tmp_path, axis):
    ct, _ = ibsi
    ds = pydicom.dcmread(IBSI_RTSTRUCT)
    for contour in ds.ROIContourSequence[0].ContourSequence:
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        points[:, axis] += 500.0
        contour.ContourData = [f"{v:.4f}" for v in points.ravel()]
    path = tmp_path / "outside.dcm"
    ds.save_as(path)
    with pytest.raises(InputError, match="outside") as info:
        read_dicom_segments(path, ct, tumor_only=True)
    assert str(path) in str(info.value)


def test_wrong_roi_name_is_refused_with_the_names(ibsi, tmp_path):
    ct, _ = ibsi
    with pytest.raises(InputError) as info:
        read_dicom_segments(IBSI_RTSTRUCT, ct, roi="GTV-2", tumor_only=True)
    message = info.value.describe(FLAGS)
    assert message.startswith("--roi: ") and "'GTV-1'" in message and str(IBSI_RTSTRUCT) in message
    ds = pydicom.dcmread(IBSI_RTSTRUCT)  # two ROIs and no --roi: which one is the tumour?
    second = copy.deepcopy(ds.StructureSetROISequence[0])
    second.ROINumber, second.ROIName = 2, "Lung_R"
    ds.StructureSetROISequence.append(second)
    path = tmp_path / "two.dcm"
    ds.save_as(path)
    with pytest.raises(InputError, match="has ROIs 'GTV-1', 'Lung_R'; choose one"):
        read_dicom_segments(path, ct, tumor_only=True)
    assert np.array_equal(read_dicom_segments(path, ct, roi="GTV-1", tumor_only=True)[TUMOR],
                          read_dicom_segments(IBSI_RTSTRUCT, ct, tumor_only=True)[TUMOR])


def test_rtstruct_of_another_series_is_refused(ibsi, lidc):
    with pytest.raises(InputError, match="references series .*not the CT's series") as info:
        read_dicom_segments(IBSI_RTSTRUCT, lidc[0], tumor_only=True)
    assert info.value.path == str(IBSI_RTSTRUCT)


def test_seg_reads_back_voxel_for_voxel(lidc, lidc_seg):
    ct = lidc[0]
    path, expected = lidc_seg
    assert is_dicom_object(path) == "SEG"
    segments = read_dicom_segments(path, ct)
    assert set(segments) == {TUMOR, RIGHT_LUNG}
    for name, mask in expected.items():
        assert segments[name].shape == ct.geometry.shape_kji
        assert np.array_equal(segments[name], mask), name
    # for --tumor-mask: the tumours only, both joined (the second known by its label 'Lesion 2' only)
    assert list(read_dicom_segments(path, ct, tumor_only=True)) == [TUMOR]
    nodule_only = read_dicom_segments(path, ct, roi="NODULE a", tumor_only=True)[TUMOR]
    assert np.array_equal(nodule_only, lidc[3])
    # for --lungs-from with --roi: the tumour is the segment named, the lungs by their codes
    segments = read_dicom_segments(path, ct, roi="lesion 2")
    assert np.array_equal(segments[TUMOR], expected[TUMOR] & ~lidc[3]) and segments[RIGHT_LUNG].any()
    inputs = load_inputs(LIDC / "dicom", PipelineOptions(lungs_from=path))
    assert set(inputs.lungs_from) == {TUMOR, RIGHT_LUNG} and inputs.tumor_mask is None


def test_seg_of_frames_far_apart_without_their_spacing(lidc, tmp_path):
    """Without SpacingBetweenSlices highdicom spaces two frames by their gap; they still stay two slices."""
    ct = lidc[0]
    shape = ct.geometry.shape_kji
    mask = _box(shape, 3, slice(100, 120), slice(200, 230)) | _box(shape, 8, slice(100, 120), slice(200, 230))
    path = _make_seg(lidc, tmp_path / "two-frames.dcm", [("nodule", T.MORPHOLOGICALLY_ALTERED_STRUCTURE,
                                                          T.NODULE, None, mask)])
    seg = pydicom.dcmread(path)
    del seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices
    seg.save_as(path)
    assert np.array_equal(read_dicom_segments(path, ct, tumor_only=True)[TUMOR], mask)


def test_seg_of_another_series_is_refused_on_the_command_line(lidc, lidc_seg, tmp_path, capsys):
    path, _ = lidc_seg
    seg = pydicom.dcmread(path)
    seg.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.3.4.5"
    bad = tmp_path / "other-series.dcm"
    seg.save_as(bad)
    with pytest.raises(InputError, match="references series 1.2.3.4.5, not the CT's series") as info:
        read_dicom_segments(bad, lidc[0])
    assert info.value.path == str(bad)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["run", str(LIDC / "dicom"), "--tumor-mask", str(bad), "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], lines
    assert not out.exists() or not any(out.iterdir())


def test_seg_without_a_tumour_segment_is_refused_naming_its_segments(lidc, tmp_path):
    ct = lidc[0]
    lung = _box(ct.geometry.shape_kji, slice(2, 5), slice(150, 200), slice(300, 350))
    path = _make_seg(lidc, tmp_path / "lungs.dcm", [("left", T.ANATOMICAL_STRUCTURE, T.LUNG, T.LEFT, lung),
                                                    ("heart", T.ANATOMICAL_STRUCTURE, T.Code("SCT", "80891009",
                                                                                             "Heart"), None, lung)])
    with pytest.raises(InputError, match="no tumour segment .*'left', 'heart'"):
        read_dicom_segments(path, ct, tumor_only=True)
    assert np.array_equal(read_dicom_segments(path, ct)[LEFT_LUNG], lung)


def test_names_by_label_and_non_dicom_files(ibsi):
    assert [name_for_label(s) for s in ("Right Lung", "Lung_L", "GTV-1", "tumour", "Nodule 3", "heart")] == [
        RIGHT_LUNG, LEFT_LUNG, TUMOR, TUMOR, TUMOR, None]
    assert is_dicom_object(IBSI_MASK) is None and is_dicom_object(IBSI_CT) is None
    assert is_dicom_object(next(IBSI_CT.iterdir())) is None  # a CT slice is neither SEG nor RTSTRUCT
