"""DICOM output: coded segments in the .seg.nrrd, and the SEG and SR that `run` writes for DICOM input,
checked by tools the project did not write (dciodvfy, dcmqi, highdicom, Slicer's terminology logic)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import run_cli

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.dicom.terminology import (
    ANATOMIC_CONTEXT,
    LEFT,
    LUNG,
    MASS,
    NODULE,
    RIGHT,
    SEGMENTATION_CONTEXT,
    SegmentTerminology,
    segment_name_for,
    terminology_for,
)
from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.io.segmentation import read_segments

BIN = Path(sys.executable).parent


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """dciodvfy's error and warning lines for one file (the warnings are printed for the test log)."""
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    print(f"dciodvfy {path.name}: {len(errors)} errors, {len(warnings)} warnings", *warnings, sep="\n  ")
    return errors, warnings


def _check_run_folder(out: Path, tmp: Path) -> dict:
    """The checks every DICOM run's output must pass; returns the report."""
    import highdicom as hd

    report = json.loads((out / "report.json").read_text())
    seg_path, sr_path = out / "segmentation.dcm", out / "measurements.dcm"
    assert report["dicom"]["segmentation"] == seg_path.name and report["dicom"]["measurements"] == sr_path.name
    # 1. dciodvfy: no error in either object
    if shutil.which("dciodvfy"):
        for path in (seg_path, sr_path):
            errors, _ = _dciodvfy(path)
            assert errors == [], errors
    # 2. dcmqi's segimage2itkimage gives back the .seg.nrrd voxel for voxel
    dq = tmp / "dcmqi"
    dq.mkdir()
    subprocess.run([str(BIN / "segimage2itkimage"), "--inputDICOM", str(seg_path), "--outputDirectory", str(dq),
                    "--outputType", "nrrd"], check=True, capture_output=True, timeout=300)
    meta = json.loads((dq / "meta.json").read_text())
    expected, geometry = read_segments(out / "segmentation.seg.nrrd")
    got: dict[str, np.ndarray] = {}
    for group in meta["segmentAttributes"]:
        for attributes in group:
            image = sitk.ReadImage(str(dq / f"{attributes['labelID']}.nrrd"))
            mask = _on_grid(image, geometry)
            label = attributes["SegmentLabel"]
            got[label] = got.get(label, np.zeros_like(mask)) | mask
    assert set(got) == set(expected)
    for name, mask in expected.items():
        assert np.array_equal(got[name], mask), f"{name}: {int((got[name] != mask).sum())} voxels differ"
    # 3. the SEG: labels, codes, algorithm, the CT's study and instances
    ct = read_ct(report["input"]["path"])
    seg = hd.seg.segread(seg_path)
    sr = hd.sr.srread(sr_path)
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == report["dicom"]["study_uid"]
    assert seg.SeriesDescription == "LungTumorRecon segmentation"
    assert sr.SeriesDescription == "LungTumorRecon measurements"
    assert {r.SeriesInstanceUID for r in seg.ReferencedSeriesSequence} == {ct.series_uid}
    for description in seg.SegmentSequence:
        name = segment_name_for(description.SegmentedPropertyCategoryCodeSequence[0],
                                description.SegmentedPropertyTypeCodeSequence[0],
                                (getattr(description.SegmentedPropertyTypeCodeSequence[0],
                                         "SegmentedPropertyTypeModifierCodeSequence", None) or [None])[0])
        assert name == description.SegmentLabel
        algorithm = description.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "LungTumorRecon" and algorithm.AlgorithmVersion
        assert "method" in algorithm.AlgorithmParameters
    # 4. highdicom reads the SR back to report.json's numbers
    groups = sr.content.get_volumetric_roi_measurement_groups()
    tumors = [g for g in groups if g.tracking_identifier.startswith("tumor")]
    assert len(tumors) >= len(report["tumors"])
    keys = ("volume_ml", "longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm", "mean_hu")
    for group, measured in zip(tumors, report["tumors"]):
        assert group.tracking_uid and group.referenced_segment is not None
        values = [m.value for m in group.get_measurements()]
        assert values == pytest.approx([measured[k] for k in keys], rel=1e-6, abs=1e-6)
        units = {m.name.meaning: m.unit.value for m in group.get_measurements()}
        assert units["Volume"] == "ml" and units["Long axis"] == "mm" and "hnsf" in units["Attenuation Coefficient"]
    for name in ("right lung", "left lung"):
        if name in report["segments"]:
            lung = next(g for g in groups if g.tracking_identifier == name)
            assert lung.get_measurements()[0].value == pytest.approx(report["segments"][name]["volume_ml"], rel=1e-6)
    return report


def _on_grid(image: sitk.Image, geometry: VolumeGeometry) -> np.ndarray:
    reference = sitk.Image(list(geometry.size), sitk.sitkUInt8)
    geometry.apply_to_sitk(reference)
    resampled = sitk.Resample(sitk.Cast(image > 0, sitk.sitkUInt8), reference, sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(resampled).astype(bool)


def _run_lidc(data: Path, tmp_path: Path, *options) -> Path:
    """``run`` on LIDC-IDRI-0001's DICOM, the readers' union (votes > 0) as the tumour mask."""
    case = data / "lidc_idri_0001"
    out = tmp_path / "out"
    done = run_cli("run", case / "dicom", "--out", out, *options, "--quiet",
                   "--tumor-mask", case / "LIDC-IDRI-0001_small_nodule_votes.nii.gz")
    assert done.returncode == 0, done.stderr
    return out


def test_terminology_strings_are_slicers_own():
    """Every entry the project writes is found, code for code, in Slicer's loaded terminology tables."""
    import slicer
    from trame_slicer.resources import get_terminologies_path

    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    logic.SetModuleShareDirectory(str(get_terminologies_path()))
    logic.SetMRMLScene(slicer.vtkMRMLScene())  # loads the default tables
    names = []
    logic.GetLoadedTerminologyNames(names)
    assert SEGMENTATION_CONTEXT in names
    lung = slicer.vtkSlicerTerminologyEntry()  # Slicer's own entry for "right lung" is ours
    assert logic.FindTypeInTerminologyBy3dSlicerLabel(SEGMENTATION_CONTEXT, "right lung", lung)
    assert lung.GetTypeObject().GetCodeValue() == LUNG.value
    assert lung.GetTypeModifierObject().GetCodeValue() == RIGHT.value
    cases = [terminology_for("right lung"), terminology_for("left lung"), terminology_for("tumor", 12.0, "right"),
             terminology_for("tumor", 45.0, "left")]
    for terms, type_code, modifier in zip(cases, (LUNG, LUNG, NODULE, MASS), (RIGHT, LEFT, None, None)):
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(terms.slicer_entry(), entry)
        assert entry.GetTypeObject().GetCodeValue() == type_code.value
        assert entry.GetTypeObject().GetCodeMeaning() == type_code.meaning
        if modifier is not None:
            assert entry.GetTypeModifierObject().GetCodeValue() == modifier.value
        assert logic.UpdateEntryFromLoadedTerminologies(entry, [SEGMENTATION_CONTEXT], [ANATOMIC_CONTEXT]), \
            terms.slicer_entry()
        assert SegmentTerminology.from_slicer_entry(terms.slicer_entry()) == terms
    assert terminology_for("tumor", 30.0, None).type == NODULE and terminology_for("tumor", 30.5, None).type == MASS


def test_lidc_run_writes_a_valid_seg_and_sr(data, tmp_path):
    """A real DICOM CT (LIDC-IDRI-0001): coded .seg.nrrd segments, a SEG and an SR that the validators accept."""
    import vtk

    from LungTumorReconLib.mrml.scene import Scene

    out = _run_lidc(data, tmp_path, "--lungs", "threshold", "--recon", "mc")
    report = _check_run_folder(out, tmp_path)
    assert report["tumors"] and report["dicom"]["study_uid"]
    # Slicer's reader gives each segment its terminology back
    scene = Scene()
    try:
        node = scene.logics.segmentations.LoadSegmentationFromFile(str(out / "segmentation.seg.nrrd"), True, "seg")
        segmentation = node.GetSegmentation()
        tags = {}
        for n in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(n)
            entry = vtk.reference("")
            assert segment.GetTag(segment.GetTerminologyEntryTagName(), entry)
            tags[segment.GetName()] = SegmentTerminology.from_slicer_entry(entry.get())
    finally:
        scene.close()
    assert tags["right lung"].type_modifier == RIGHT and tags["left lung"].type_modifier == LEFT
    assert tags["tumor"].region == LUNG and tags["tumor"].region_modifier == LEFT  # left lower lobe mass


def test_a_tumour_alone_is_a_one_segment_seg(data, tmp_path):
    """Without lungs the SEG has one segment (highdicom then shares its identification across frames)."""
    report = _check_run_folder(_run_lidc(data, tmp_path, "--lungs", "none", "--recon", "none"), tmp_path)
    assert list(report["segments"]) == ["tumor"]


def test_synthetic_dicom_series_with_seeded_gk(tmp_path):
    """A synthetic chest written as a DICOM series, its tumour found by GK from a click: the same checks."""
    from LungTumorReconDev.dicom_series import write_ct_series
    from LungTumorReconDev.synthetic_thorax import make_thorax
    from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json

    thorax = make_thorax(size=(128, 128, 40), spacing=(2.0, 2.0, 2.5), tumors=("solid",), seed=11)
    write_ct_series(thorax.ct, thorax.geometry, tmp_path / "ct")
    truth = thorax.labels["tumor"]
    k, j, i = (int(v) for v in np.round(np.argwhere(truth).mean(axis=0)))
    seeds = tmp_path / "seeds.mrk.json"
    seeds.write_text(json.dumps(seeds_to_markups_json(
        [Seed("tumor", tuple(float(v) for v in thorax.geometry.kji_to_lps(np.array([k, j, i], float))))])))
    out = tmp_path / "out"
    done = run_cli("run", tmp_path / "ct", "--out", out, "--lungs", "threshold", "--seeds", seeds, "--recon", "mc",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    report = _check_run_folder(out, tmp_path)
    assert len(report["tumors"]) == 1


def test_no_dicom_for_image_input_or_when_asked(small_case, data, tmp_path):
    """An NRRD CT gives no DICOM (no invented patient); --no-dicom skips it for a DICOM CT."""
    ct_path, mask_path, _, _, _ = small_case
    done = run_cli("run", ct_path, "--out", tmp_path / "nrrd", "--lungs", "threshold", "--tumor-mask", mask_path,
                   "--recon", "mc", "--quiet")
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "nrrd").glob("*.dcm"))
    assert json.loads((tmp_path / "nrrd" / "report.json").read_text())["dicom"] is None
    case = data / "lidc_idri_0001"
    done = run_cli("run", case / "dicom", "--out", tmp_path / "skip", "--lungs", "threshold", "--recon", "mc",
                   "--tumor-mask", case / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", "--quiet", "--no-dicom")
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "skip").glob("*.dcm"))


def test_ibsi_dicom_run_writes_a_valid_seg_and_sr(data, tmp_path):
    """The IBSI crop's DICOM CT with its GTV (from the NIfTI mask): a 359 mL mass, right lung."""
    case = data / "ibsi_nsclc_crop"
    out = tmp_path / "out"
    done = run_cli("run", case / "dicom" / "image", "--out", out, "--lungs", "threshold", "--recon", "mc", "--quiet",
                   "--tumor-mask", case / "nifti" / "mask.nii.gz")
    assert done.returncode == 0, done.stderr
    report = _check_run_folder(out, tmp_path)
    assert report["tumors"][0]["volume_ml"] > 300


def test_scene_export_takes_the_corrected_segments(data, tmp_path):
    """Export DICOM from the scene (both panels' button): the segments as edited, measured again."""
    import highdicom as hd

    from LungTumorReconLib.errors import InputError
    from LungTumorReconLib.mrml.presenter import ResultPresenter
    from LungTumorReconLib.mrml.roles import Role
    from LungTumorReconLib.mrml.scene import Scene
    from LungTumorReconLib.pipeline.options import PipelineOptions
    from LungTumorReconLib.pipeline.run import run_pipeline

    case = data / "lidc_idri_0001"
    result = run_pipeline(case / "dicom", PipelineOptions(
        lungs="threshold", recon="none", tumor_mask_path=case / "LIDC-IDRI-0001_small_nodule_votes.nii.gz"))
    scene = Scene()
    try:
        presenter = ResultPresenter(scene)
        nodes = presenter.add_result(result)
        tumor = result.segments["tumor"].copy()
        k = int(np.flatnonzero(tumor.any(axis=(1, 2)))[-1])
        tumor[k] = False  # the user erases the tumour's top slice
        scene.set_segmentation({"tumor": tumor}, result.ct.geometry, node=nodes.segmentation)
        files = presenter.export_dicom(nodes.volume, tmp_path / "export")
        assert [f.name for f in files] == ["segmentation.dcm", "measurements.dcm"]
        seg = hd.seg.segread(files[0])
        number = next(d.SegmentNumber for d in seg.SegmentSequence if d.SegmentLabel == "tumor")
        frames = seg.get_volume(segment_numbers=[number], combine_segments=True, skip_overlap_checks=True)
        assert int(np.count_nonzero(frames.array)) == int(tumor.sum())
        sr = hd.sr.srread(files[1])
        group = next(g for g in sr.content.get_volumetric_roi_measurement_groups()
                     if g.tracking_identifier == "tumor 1")
        volume = next(m.value for m in group.get_measurements() if m.name.meaning == "Volume")
        assert volume == pytest.approx(tumor.sum() * result.ct.geometry.voxel_volume_ml, rel=1e-6)
        assert volume < result.tumors[0].volume_ml
        plain = scene.add_volume(result.ct.array, result.ct.geometry, name="not from DICOM")
        with pytest.raises(InputError, match="not loaded from DICOM"):
            presenter.export_dicom(plain, tmp_path / "nothing")
        assert presenter.node_for(Role.SEGMENTATION, nodes.volume) is nodes.segmentation
    finally:
        scene.close()


def test_batch_writes_dicom_for_its_dicom_cases(data, tmp_path):
    """``batch`` passes DICOM output on to each case: the DICOM case gets its SEG and SR."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "lidc").symlink_to(data / "lidc_idri_0001" / "dicom", target_is_directory=True)
    done = run_cli("batch", cases, "--out", tmp_path / "out", "--lungs", "threshold", "--tumor", "none",
                   "--recon", "none", "--quiet")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "lidc").glob("*.dcm")) == ["measurements.dcm",
                                                                               "segmentation.dcm"]
