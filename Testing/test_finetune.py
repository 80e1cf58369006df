"""Fine-tuning on a site's corrected cases: the cases folder, the loop on the real shipped
r3d-dense-unet (a few steps on two tiny cases), the weights it writes used by a run with
``--weights``, what is refused before anything is written, the CLI, the child process's
Cancel, and the scene layer's "Save this case for fine-tuning" on real MRML classes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.finetune import FINETUNABLE_METHODS
from LungTumorReconLib.finetune.cases import find_case_pairs, read_pair, write_case
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.io.segmentation import write_segments

torch = pytest.importorskip("torch")
GEOMETRY = VolumeGeometry(size=(64, 64, 24), spacing=(1.25, 1.25, 1.25), origin=(-40.0, -40.0, -15.0))


def tiny_case(seed: int) -> tuple[CTVolume, np.ndarray]:
    """Lung-like noise with a bright sphere (the 'tumour'), 24×64×64 at 1.25 mm."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(-850.0, 30.0, GEOMETRY.shape_kji).astype(np.int16)
    kk, jj, ii = np.indices(GEOMETRY.shape_kji)
    centre = (12, 30 + 3 * seed, 34 - 2 * seed)
    tumour = (kk - centre[0]) ** 2 + (jj - centre[1]) ** 2 + (ii - centre[2]) ** 2 <= 6 ** 2
    hu[tumour] = rng.normal(40.0, 20.0, int(tumour.sum())).astype(np.int16)
    return CTVolume(array=hu, geometry=GEOMETRY, path=f"tiny{seed}"), tumour


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cases")
    for seed in (1, 2):
        write_case(folder, f"case{seed}", *tiny_case(seed))
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_the_panels_list_what_the_registry_supports():
    from LungTumorReconLib.finetune.training import finetunable_models

    assert tuple(finetunable_models()) == FINETUNABLE_METHODS
    assert finetunable_models()["resunet"] == "resunet-tumor"


def test_a_written_case_reads_back_as_a_pair(tmp_path):
    ct, tumour = tiny_case(3)
    ct_path, seg_path = write_case(tmp_path, "ward7", ct, tumour)
    assert (ct_path.name, seg_path.name) == ("ward7.nrrd", "ward7.seg.nrrd") and _leftovers(tmp_path) == []
    assert oct(seg_path.stat().st_mode & 0o777) != "0o600"  # not mkstemp's private mode
    [pair] = find_case_pairs(tmp_path)
    back_ct, back_mask = read_pair(pair)
    assert np.array_equal(back_ct.array, ct.array) and np.array_equal(back_mask, tumour)
    with pytest.raises(InputError, match="exists already"):
        write_case(tmp_path, "ward7", ct, tumour)
    with pytest.raises(InputError, match="no tumour"):
        write_case(tmp_path, "empty", ct, np.zeros_like(tumour))


def test_finetune_writes_weights_that_a_run_with_weights_uses(cases_dir, tmp_path):
    from LungTumorReconLib.finetune.training import finetune
    from LungTumorReconLib.networks.registry import load_model, registry, sha256
    from LungTumorReconLib.pipeline.options import PipelineOptions
    from LungTumorReconLib.pipeline.run import check_options, run_on_volume
    from LungTumorReconLib.resources import resource_path

    registry_file = resource_path("Models", "registry.json")
    registry_before = sha256(registry_file)
    out = tmp_path / "adapted"
    events = []
    result = finetune("r3d-dense-unet", cases_dir, out, steps=4, validation="training", progress=events.append)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert _leftovers(tmp_path) == [] and sha256(registry_file) == registry_before

    summary = json.loads((out / "model.json").read_text())
    entry = registry()["r3d-dense-unet"]
    assert summary["base_model"] == "r3d-dense-unet" and summary["tumor_method"] == "r3d-dense-unet"
    assert summary["architecture"] == entry["architecture"] and summary["config"] == entry["config"]
    assert summary["cases"] == {"training": ["case1", "case2"], "validation": ["case1", "case2"]}
    assert summary["steps"] == 4 and summary["seconds"] > 0
    validation = summary["validation"]
    assert "training cases" in validation["on"] and 0.0 <= validation["dice_before"] <= 1.0
    assert validation["dice_after"] >= validation["dice_before"]  # the best weights by validation are kept
    assert "Not for clinical use" in summary["not_for_clinical_use"]
    assert summary["use"].endswith(f"--tumor r3d-dense-unet --weights {out.resolve() / 'model.safetensors'}")
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    adapted, shipped = load_model("r3d-dense-unet", weights=result.weights), load_model("r3d-dense-unet")
    changed = any(not torch.equal(a, b) for a, b in zip(adapted.state_dict().values(), shipped.state_dict().values()))
    assert changed == (validation["best_step"] > 0)

    ct, tumour = tiny_case(1)
    seed = Seed("tumor", tuple(float(v) for v in GEOMETRY.kji_to_lps(np.argwhere(tumour).mean(axis=0).round())))
    options = PipelineOptions(lungs="none", tumor="r3d-dense-unet", recon="none", weights=result.weights)
    run = run_on_volume(ct, [seed], options, check_options(options))
    assert run.methods["tumor"]["parameters"]["weights"] == str(result.weights)
    assert "tumor" in run.segments


def _bad_folder(tmp_path: Path) -> Path:
    """case1 as written, and zcase whose segmentation is on another grid (20 slices, not 24)."""
    folder = tmp_path / "bad"
    write_case(folder, "case1", *tiny_case(1))
    ct, _ = tiny_case(2)
    write_case(folder, "zcase", ct, tiny_case(2)[1])
    other = VolumeGeometry(size=(64, 64, 20), spacing=GEOMETRY.spacing, origin=GEOMETRY.origin)
    mask = np.zeros(other.shape_kji, dtype=bool)
    mask[8:12, 20:30, 20:30] = True
    write_segments({"tumor": mask}, other, folder / "zcase.seg.nrrd")
    return folder


def test_bad_cases_are_refused_by_name_before_anything_is_written(tmp_path):
    from LungTumorReconLib.finetune.training import finetune

    out = tmp_path / "adapted"
    with pytest.raises(InputError, match="not on its CT's grid") as refused:
        finetune("r3d-dense-unet", _bad_folder(tmp_path), out, steps=2, validation="training")
    assert refused.value.path == str(tmp_path / "bad" / "zcase.seg.nrrd")
    assert not out.exists() and _leftovers(tmp_path) == []

    unpaired = tmp_path / "unpaired"
    write_case(unpaired, "a", *tiny_case(1))
    (unpaired / "a.seg.nrrd").rename(unpaired / "b.seg.nrrd")
    no_tumour = tmp_path / "no_tumour"
    write_case(no_tumour, "a", *tiny_case(1))
    write_segments({"nodule": tiny_case(1)[1]}, GEOMETRY, no_tumour / "a.seg.nrrd")
    (tmp_path / "empty").mkdir()
    for folder, message in ((unpaired, r"unpaired files: a\.nrrd \(no a\.seg\.nrrd\); b\.seg\.nrrd"),
                            (no_tumour, "no segment named 'tumor' \\(has: nodule\\)"),
                            (tmp_path / "empty", "no cases"), (tmp_path / "missing", "no such folder")):
        with pytest.raises(InputError, match=message):
            finetune("r3d-dense-unet", folder, out, steps=2)
        assert not out.exists()
    with pytest.raises(UnavailableError, match="ensemble of dense-highres3dnet-v1 and dense-highres3dnet-v2"):
        finetune("dense-highres3dnet-v1v2", unpaired, out)
    with pytest.raises(InputError, match="positive number of steps"):
        finetune("resunet", unpaired, out, steps=0)


def test_the_cli_refuses_a_bad_case_with_one_error_line(tmp_path):
    out = tmp_path / "adapted"
    proc = run_cli("finetune", "r3d-dense-unet", "--cases", _bad_folder(tmp_path), "--out", out, "--steps", "2")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert "zcase.seg.nrrd" in errors[0] and "not on its CT's grid" in errors[0]
    assert not out.exists() and _leftovers(tmp_path) == []


def test_cancel_stops_the_fine_tuning_child_and_nothing_is_written(cases_dir, tmp_path, monkeypatch):
    from LungTumorReconLib.finetune.job import FinetuneJob, FinetuneRequest
    from LungTumorReconLib.pipeline.session import Outcome

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the child's torch: one thread, as every test here

    with pytest.raises(UnavailableError, match="ensemble"):  # refused at start, no child
        FinetuneJob(FinetuneRequest("dense-highres3dnet-v1v2", str(cases_dir), str(tmp_path / "x"))).start()
    out = tmp_path / "adapted"
    job = FinetuneJob(FinetuneRequest("r3d-dense-unet", str(cases_dir), str(out), steps=100000,
                                      validation="training", device="cpu")).start()
    try:
        deadline = time.time() + 90
        while job.running and time.time() < deadline and not any("step" in m for m in job.poll().log):
            time.sleep(0.1)
        assert job.running, job.error  # training, not finished or failed
        process = job._process
        t = time.perf_counter()
        job.cancel()
        assert time.perf_counter() - t < 3.0 and not job.running and process.returncode is not None
        outcome = job.finish()
        assert outcome.status is Outcome.CANCELLED and outcome.weights is None
    finally:
        job.cleanup()
    assert not job.folder.exists() and not out.exists() and _leftovers(tmp_path) == []


def test_the_scene_layer_saves_the_ct_and_its_corrected_tumour(tmp_path):
    from LungTumorReconLib.mrml.presenter import ResultPresenter
    from LungTumorReconLib.mrml.roles import Role
    from LungTumorReconLib.mrml.scene import Scene

    ct, tumour = tiny_case(4)
    scene = Scene()
    presenter = ResultPresenter(scene)
    volume = scene.add_volume(ct.array, GEOMETRY, name="chest 7")
    lungs = np.zeros_like(tumour)
    lungs[2:22, 10:54, 10:54] = True
    with pytest.raises(InputError, match="no tumour segment"):
        presenter.save_case_for_finetuning(volume, tmp_path)
    corrected = tumour.copy()
    corrected[12] = False  # the user's correction, as it is in the scene
    segmentation = presenter.tag(scene.set_segmentation({"right lung": lungs, "tumor": corrected}, GEOMETRY,
                                                        reference_volume=volume), Role.SEGMENTATION, volume)
    decoy = scene.set_segmentation({"tumor": lungs}, GEOMETRY, reference_volume=volume)  # the user's own, no role
    decoy.SetName(segmentation.GetName())
    ct_path, seg_path = presenter.save_case_for_finetuning(volume, tmp_path)
    assert (ct_path.name, seg_path.name) == ("chest_7.nrrd", "chest_7.seg.nrrd")
    back_ct, back_tumour = read_pair(find_case_pairs(tmp_path)[0])
    assert np.array_equal(back_ct.array, ct.array) and np.array_equal(back_tumour, corrected)
    loaded = Scene().logics.segmentations.LoadSegmentationFromFile(str(seg_path), True, "loaded")  # Slicer's reader
    assert [loaded.GetSegmentation().GetNthSegment(i).GetName()
            for i in range(loaded.GetSegmentation().GetNumberOfSegments())] == ["tumor"]
    again, _ = presenter.save_case_for_finetuning(volume, tmp_path)
    assert again.name == "chest_7_2.nrrd"  # a second save never replaces the first
    scene.close()



def test_a_base_or_fold_of_a_method_network_can_be_adapted():
    from LungTumorReconLib.finetune.training import resolve_model

    assert resolve_model("r3d-dense-unet-synthetic")[:2] == ("r3d-dense-unet", "r3d-dense-unet-synthetic")
    assert resolve_model("dense-highres3dnet-without-lung1")[0] == "dense-highres3dnet"
