"""The command line end to end, as users and scripts call it."""

import json
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_cli
from LungTumorReconLib import __version__
from LungTumorReconLib.cli import main
from LungTumorReconLib.io.report import load_schema
from LungTumorReconLib.io.segmentation import read_segments

EXPECTED_FILES = {"segmentation.seg.nrrd", "tumor.vtk", "scene.mrb", "report.json", "axial.png", "3d.png"}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, small_case):
    ct_path, mask_path, seeds_path, tumour, seed = small_case
    out = tmp_path_factory.mktemp("runs") / "result"
    proc = run_cli("run", ct_path, "--out", out, "--seeds", seeds_path, "--tumor-mask", mask_path)
    return proc, out, small_case


def test_run_writes_every_output(full_run):
    proc, out, _ = full_run
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "partial folder left behind"
    for line in proc.stderr.splitlines():  # progress never looks like an error or a warning
        assert not line.startswith(("error:", "warning:")), line


def test_report_matches_schema_and_content(full_run, chest64):
    _, out, (ct_path, _, _, tumour, seed) = full_run
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, load_schema())
    g = chest64.geometry
    assert report["input"]["size"] == list(g.size)
    assert report["methods"]["lungs"]["name"] == "snake"
    assert report["methods"]["recon"]["name"] == "interp-mc"
    assert set(report["segments"]) == {"right lung", "left lung", "tumor"}
    assert report["segments"]["tumor"]["voxels"] == int(tumour.sum())
    (t,) = report["tumors"]
    assert np.allclose(t["seed_lps"], seed.lps)
    assert t["max_3d_diameter_mm"] == pytest.approx(24.0, abs=g.spacing[0] * 1.5)
    assert t["mean_hu"] == pytest.approx(40.0)
    assert np.allclose(t["centroid_lps"], seed.lps, atol=1.0)
    assert report["model"]["file"] == "tumor.vtk" and report["model"]["points"] > 100
    assert report["model"]["volume_ml"] == pytest.approx(report["segments"]["tumor"]["volume_ml"], rel=0.2)
    assert report["versions"]["lungtumorrecon"] == __version__


def test_segmentation_file_is_on_the_input_grid(full_run, chest64):
    _, out, (_, _, _, tumour, _) = full_run
    segments, geometry = read_segments(out / "segmentation.seg.nrrd")
    assert np.allclose(geometry.ijk_to_lps_matrix(), chest64.geometry.ijk_to_lps_matrix())
    assert geometry.size == chest64.geometry.size
    assert list(segments) == ["right lung", "left lung", "tumor"]
    assert np.array_equal(segments["tumor"], tumour)
    # the lung segments contain the tumour placed inside the right lung
    assert (segments["right lung"] & tumour).sum() / tumour.sum() > 0.95


def test_model_is_in_lps_millimetres(full_run):
    _, out, (_, _, _, _, seed) = full_run
    from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    from vtkmodules.util.numpy_support import vtk_to_numpy

    reader = vtkPolyDataReader()
    reader.SetFileName(str(out / "tumor.vtk"))
    reader.Update()
    points = vtk_to_numpy(reader.GetOutput().GetPoints().GetData())
    assert np.allclose(points.mean(axis=0), seed.lps, atol=1.5)
    assert (out / "tumor.vtk").read_bytes()[:80].find(b"SPACE=LPS") > 0


def test_pictures_are_real_images(full_run):
    from PIL import Image

    _, out, _ = full_run
    axial = np.asarray(Image.open(out / "axial.png").convert("RGB"))
    view = np.asarray(Image.open(out / "3d.png").convert("RGB"))
    assert axial.shape[1] >= 512 and view.shape[:2] == (600, 800)
    red = (axial[..., 0] > 200) & (axial[..., 1] < 120)  # the tumour outline
    assert red.sum() > 20
    assert view.std() > 10  # not a blank render


def test_scene_bundle_loads_in_a_fresh_scene(full_run):
    from LungTumorReconLib.mrml.scene import Scene

    _, out, _ = full_run
    scene = Scene.load(out / "scene.mrb")
    try:
        assert len(scene.nodes_by_class("vtkMRMLScalarVolumeNode")) == 1
        assert scene.node_by_name("tumor model", "vtkMRMLModelNode") is not None
        assert scene.nodes_by_class("vtkMRMLMarkupsFiducialNode")
        assert scene.node_by_name("Tumor measurements", "vtkMRMLTableNode") is not None
    finally:
        scene.close()


def test_non_empty_output_is_refused_then_overwritten(tmp_path, small_case):
    ct_path = small_case[0]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = main(["run", str(ct_path), "--out", str(out), "--quiet", "--recon", "none"])
    assert code == 2
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code = main(["run", str(ct_path), "--out", str(out), "--quiet", "--overwrite", "--recon", "none"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert "keep.txt" not in names and "report.json" in names and "tumor.vtk" not in names
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _bad(tmp_path, capsys, *args):
    out = tmp_path / "never"
    code = main([*map(str, args), "--out", str(out), "--quiet"] if args[0] == "run" else list(map(str, args)))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    return err[0]


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, data, small_case, monkeypatch):
    from LungTumorReconLib.pipeline import methods

    ct_path, mask_path, seeds_path, _, _ = small_case
    # every listed method is built now; an unbuilt one (as a later issue's would be) is refused
    monkeypatch.setitem(methods._NOT_YET, ("tumor", "lnhg"), "issue 99")
    text = tmp_path / "notes.nrrd"
    text.write_text("not an image")
    assert "not a readable image" in _bad(tmp_path, capsys, "run", text)
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.Image([32, 32], sitk.sitkInt16) - 1000, str(flat))
    assert "2D" in _bad(tmp_path, capsys, "run", flat)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert "empty" in _bad(tmp_path, capsys, "run", empty)
    bad_seeds = tmp_path / "bad.mrk.json"
    bad_seeds.write_text("{")
    assert "malformed seeds" in _bad(tmp_path, capsys, "run", ct_path, "--seeds", bad_seeds)
    far = tmp_path / "far.mrk.json"
    far.write_text(json.dumps({"markups": [{"controlPoints": [{"label": "tumor", "position": [9999, 0, 0]}]}]}))
    assert "outside the CT" in _bad(tmp_path, capsys, "run", ct_path, "--seeds", far)
    assert "not available yet" in _bad(tmp_path, capsys, "run", ct_path, "--tumor", "lnhg")
    assert "invalid choice" in _bad(tmp_path, capsys, "run", ct_path, "--tumor", "magic")
    assert "--weights" in _bad(tmp_path, capsys, "run", ct_path, "--weights", mask_path)
    assert "not a readable" in _bad(tmp_path, capsys, "run", ct_path, "--tumor-mask", text)


def test_non_ct_dicom_and_inconsistent_slices_via_cli(tmp_path, capsys, data):
    import shutil

    import pydicom

    folder = tmp_path / "mr"
    shutil.copytree(data / "lidc_idri_0001" / "dicom", folder)
    files = sorted(folder.iterdir())
    for f in files:
        f.chmod(0o644)
    ds = pydicom.dcmread(files[2])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(files[2])
    assert "orientation" in _bad(tmp_path, capsys, "run", folder)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.save_as(f)
    assert "found modality MR" in _bad(tmp_path, capsys, "run", folder)


def test_cuda_without_gpu_is_refused(tmp_path, capsys, small_case):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    assert "no CUDA GPU" in _bad(tmp_path, capsys, "run", small_case[0], "--device", "cuda")


def test_internal_error_exits_1_with_log(tmp_path, capsys, small_case, monkeypatch):
    import LungTumorReconLib.pipeline.run as pipeline

    def boom(*args, **kwargs):
        raise ZeroDivisionError("simulated")

    monkeypatch.setattr(pipeline, "segment_lungs_snake", boom)
    out = tmp_path / "out"
    code = main(["run", str(small_case[0]), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: internal error")
    log = err[0].rsplit("traceback in ", 1)[1].rstrip(")")
    assert "ZeroDivisionError" in open(log).read()
    assert not out.exists()


def test_evaluate_prints_metrics(full_run, tmp_path, chest64, capsys):
    _, out, (_, mask_path, _, tumour, _) = full_run
    proc = run_cli("evaluate", "--pred", out / "segmentation.seg.nrrd", "--ref", mask_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["dice"] == pytest.approx(1.0) and metrics["hd_mm"] == pytest.approx(0.0)
    # a vote map: voxels >= 2 count; shifting the reference by one voxel lowers Dice
    votes = np.roll(tumour.astype(np.uint8) * 3, 1, axis=2)
    votes[tumour & ~np.roll(tumour, 1, axis=2)] = 1
    img = sitk.GetImageFromArray(votes)
    chest64.geometry.apply_to_sitk(img)
    sitk.WriteImage(img, str(tmp_path / "votes.nrrd"))
    shifted = np.roll(tumour, 1, axis=2)
    base = ["evaluate", "--pred", str(out / "segmentation.seg.nrrd"), "--ref", str(tmp_path / "votes.nrrd")]
    capsys.readouterr()
    assert main([*base, "--ref-threshold", "2"]) == 0
    consensus = json.loads(capsys.readouterr().out)
    assert consensus["ref_voxels"] == shifted.sum()
    assert consensus["dice"] == pytest.approx(2 * (tumour & shifted).sum() / (2 * tumour.sum()), abs=1e-6)
    assert consensus["hd_mm"] == pytest.approx(chest64.geometry.spacing[0], rel=1e-3)
    assert main(base) == 0
    union = json.loads(capsys.readouterr().out)
    assert union["ref_voxels"] == (tumour | shifted).sum()
    assert union["dice"] > consensus["dice"]


def test_version_and_help():
    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout
    proc = run_cli("run", "--help")
    assert proc.returncode == 0 and "default: snake" in proc.stdout and "--tumor-mask" in proc.stdout


def test_cli_bad_input_exit_code_from_the_real_command(tmp_path):
    proc = run_cli("run", tmp_path / "missing.nrrd", "--out", tmp_path / "o")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no such file" in errors[0]
    assert proc.stderr.splitlines()[-1] == errors[0]  # progress lines may precede it, nothing follows
    assert "Traceback" not in proc.stderr


def test_lungs_from_and_lung_correction_keep_everything_else(full_run, tmp_path, chest64):
    _, out, (ct_path, _, _, tumour, _) = full_run
    before, _ = read_segments(out / "segmentation.seg.nrrd")
    g = chest64.geometry
    k = int(np.argmax(before["right lung"].sum(axis=(1, 2))))
    corrected = np.zeros(g.shape_kji, np.uint8)
    corrected[k] = before["right lung"][k]
    corrected[k, :, : int(np.argwhere(before["right lung"][k])[:, 1].mean())] = 0  # cut its lateral half away
    img = sitk.GetImageFromArray(corrected)
    g.apply_to_sitk(img)
    sitk.WriteImage(img, str(tmp_path / "fix.nrrd"))
    again = tmp_path / "again"
    proc = run_cli("run", ct_path, "--out", again, "--lungs-from", out / "segmentation.seg.nrrd",
                   "--lung-correction", tmp_path / "fix.nrrd", "--recon", "none")
    assert proc.returncode == 0, proc.stderr
    after, _ = read_segments(again / "segmentation.seg.nrrd")
    assert np.array_equal(after["left lung"], before["left lung"])
    assert np.array_equal(after["tumor"], before["tumor"])  # carried over from --lungs-from
    assert np.array_equal(after["right lung"][k], corrected[k].astype(bool))
    assert not np.array_equal(after["right lung"], before["right lung"])
    report = json.loads((again / "report.json").read_text())
    assert report["methods"]["lungs"]["name"] == "from-file"
    assert report["methods"]["lungs"]["correction"]["slice"] == k


def test_bad_corrections_are_refused(tmp_path, capsys, small_case, chest64):
    ct_path = small_case[0]
    two = np.zeros(chest64.geometry.shape_kji, np.uint8)
    two[30:32, 20:30, 10:20] = 1
    img = sitk.GetImageFromArray(two)
    chest64.geometry.apply_to_sitk(img)
    sitk.WriteImage(img, str(tmp_path / "two.nrrd"))
    assert "one axial slice" in _bad(tmp_path, capsys, "run", ct_path, "--lung-correction", tmp_path / "two.nrrd")
    curve = tmp_path / "c.mrk.json"
    curve.write_text(json.dumps({"markups": [{"name": "spleen", "controlPoints": [
        {"position": [0, 0, 0]}, {"position": [1, 0, 0]}, {"position": [0, 1, 0]}]}]}))
    assert "'right lung' or 'left lung'" in _bad(tmp_path, capsys, "run", ct_path, "--lung-correction", curve)
    assert "needs lungs" in _bad(tmp_path, capsys, "run", ct_path, "--lungs", "none", "--lung-correction", curve)


def test_a_tumour_seed_outside_the_lungs_is_refused(tmp_path, capsys):
    """A seed in the sample's mediastinum used to give a 313 mL "tumour"; now one error line.
    The shipped seed, inside the right lung, still runs (test_demo and the web app test)."""
    from LungTumorReconLib.cli import SAMPLE_CT

    mediastinum = tmp_path / "mediastinum.mrk.json"
    mediastinum.write_text(json.dumps({"markups": [{"coordinateSystem": "LPS", "controlPoints": [
        {"label": "tumor", "position": [0.0, -70.0, -612.5]}]}]}))
    message = _bad(tmp_path, capsys, "run", SAMPLE_CT, "--seeds", mediastinum, "--lungs", "threshold")
    assert "outside the lungs" in message and "mediastinum.mrk.json" in message


def test_a_tumour_seed_in_empty_lung_is_refused(tmp_path, capsys):
    """A click in aerated lung with no dense tissue within 3.5 mm: one error line, nothing written."""
    from scipy import ndimage as ndi

    from LungTumorReconLib.cli import SAMPLE_CT
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.lungs.threshold import segment_lungs_threshold

    ct = read_ct(SAMPLE_CT)
    lungs = segment_lungs_threshold(ct.array, ct.geometry)["right lung"]
    dense = (ndi.uniform_filter(ct.array.astype(np.float32), size=(1, 3, 3)) >= -650) & lungs
    far = ndi.distance_transform_edt(~dense, sampling=ct.geometry.spacing[::-1]) > 10.0
    deep = ndi.distance_transform_edt(lungs, sampling=ct.geometry.spacing[::-1]) > 15.0
    kji = np.argwhere(far & deep & lungs)[0]
    seeds = tmp_path / "empty-lung.mrk.json"
    seeds.write_text(json.dumps({"markups": [{"coordinateSystem": "LPS", "controlPoints": [
        {"label": "tumor", "position": [float(v) for v in ct.geometry.kji_to_lps(kji)]}]}]}))
    message = _bad(tmp_path, capsys, "run", SAMPLE_CT, "--seeds", seeds, "--lungs", "threshold")
    assert "tumor seed at LPS" in message and "no dense tissue within 3.5 mm: place it on the tumour" in message


@pytest.fixture
def world_tmp():
    """A folder every user can enter (pytest's own tmp folders are private to root)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ltr-perm-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unreadable_inputs_and_unwritable_outputs_are_refused(world_tmp, data):
    """Run as an unprivileged user (root reads everything): an unreadable file, a DICOM folder
    with an unreadable slice (never silently dropped) and a folder the user cannot write in."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the command as another user")
    exe = shutil.which("lungtumorrecon", path=str(Path(sys.executable).parent))
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "--version"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:  # e.g. a checkout inside a folder private to root (mktemp -d)
        pytest.skip(f"the unprivileged user cannot run this checkout's command: {probe.stderr.strip()[:120]}")
    tmp_path = world_tmp
    ct = tmp_path / "ct.nrrd"
    shutil.copy(data / "cip_chest64" / "ct-64.nrrd", ct)
    ct.chmod(0o000)
    dicom = tmp_path / "dicom"
    shutil.copytree(data / "lidc_idri_0001" / "dicom", dicom)
    for f in dicom.iterdir():
        f.chmod(0o644)
    sorted(dicom.iterdir())[4].chmod(0o000)
    dicom.chmod(0o755)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    readable = tmp_path / "readable.nrrd"
    shutil.copy(data / "cip_chest64" / "ct-64.nrrd", readable)
    readable.chmod(0o644)
    for source, out, message in ((ct, tmp_path / "o1", "permission denied"),
                                 (dicom, tmp_path / "o2", "cannot be read (permission denied)"),
                                 (readable, locked / "o3", "cannot write in")):
        run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "run", str(source),
                              "--out", str(out), "--quiet", "--lungs", "threshold"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not out.exists()
    private = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "run", str(readable),
                              "--out", "/root/ltr-never/out", "--quiet"], capture_output=True, text=True, timeout=300)
    assert private.returncode == 2 and "permission denied" in private.stderr, private.stderr
