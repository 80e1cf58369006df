"""The deep segmenters' shared inference (deep_tumor), the Recurrent 3D-DenseUNet, its shipped
weights, its training script (one process, and two with torchrun/gloo) and ``--tumor r3d-dense-unet``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from LungTumorReconDev.tumor_datasets import read_real_case
from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.evaluation import compare_masks
from LungTumorReconLib.networks.recurrent_dense_unet import ConvLSTM2d, RecurrentDenseUNet, RecurrentDenseUNetConfig
from LungTumorReconLib.networks.registry import build_network, load_model, load_weights, registry
from LungTumorReconLib.tumor.deep import normalise_hu, post_process, predict_probability, segment_tumor_deep

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("use_convlstm", [True, False])
def test_network_keeps_the_window_shape(use_convlstm):
    model = RecurrentDenseUNet(RecurrentDenseUNetConfig(use_convlstm=use_convlstm)).eval()
    x = torch.rand(2, 1, 8, 48, 40)
    with torch.inference_mode():
        assert model(x).shape == x.shape


def test_convlstm_runs_over_the_slices_in_order():
    """Step t's state depends on slices 0..t only: changing the last slice leaves the others."""
    torch.manual_seed(0)
    layer = ConvLSTM2d(3, 4).eval()
    x = torch.rand(1, 3, 5, 6, 6)
    y = x.clone()
    y[:, :, -1] += 1.0
    with torch.inference_mode():
        a, b = layer(x), layer(y)
    assert torch.allclose(a[:, :, :-1], b[:, :, :-1]) and not torch.allclose(a[:, :, -1], b[:, :, -1])


class _Intensity(torch.nn.Module):
    """A stand-in 'network' whose logit is a fixed function of its input voxel: its
    probabilities are known, so the windowing, resampling and averaging can be checked."""

    def __init__(self):
        super().__init__()
        self.config = RecurrentDenseUNetConfig()

    def forward(self, x):
        return 8.0 * (x - 0.5)


def test_sliding_windows_return_the_probability_on_the_ct_grid():
    k, j, i = np.mgrid[0:11, 0:60, 0:52]
    hu = (-300 + 600 * np.sin(j / 9.0 + k) * np.cos(i / 11.0)).astype(np.float32)  # smooth in-plane
    spacing = (2.5, 0.625, 0.625)  # 2x finer in-plane than the model's 1.25 mm pixels
    prob = predict_probability(_Intensity(), hu, spacing)
    assert prob.shape == hu.shape
    expected = 1.0 / (1.0 + np.exp(-8.0 * (normalise_hu(hu, (-1000.0, 400.0)) - 0.5)))
    assert np.abs(prob - expected)[:, 2:-2, 2:-2].max() < 0.05


def test_a_model_with_a_slice_spacing_sees_thin_and_thick_ct_on_one_grid():
    from dataclasses import replace

    from LungTumorReconLib.tumor.deep import model_grid_image, model_grid_label

    config = replace(RecurrentDenseUNetConfig(), slice_mm=2.0)
    thin, thick = np.zeros((80, 40, 40), np.float32), np.zeros((16, 40, 40), np.float32)  # 50 mm of slices each
    assert model_grid_image(thin, (0.625, 1.25, 1.25), config).shape[2:] == (25, 40, 40)
    assert model_grid_image(thick, (3.125, 1.25, 1.25), config).shape[2:] == (25, 40, 40)
    assert model_grid_image(thick, (3.125, 1.25, 1.25), RecurrentDenseUNetConfig()).shape[2] == 16  # the CT's slices
    ball = np.zeros((80, 40, 40), bool)
    ball[30:50, 10:30, 10:30] = True
    on_grid = model_grid_label(ball, (0.625, 1.25, 1.25), config).sum() * 2.0  # mm of slices x pixels
    assert abs(on_grid - ball.sum() * 0.625) <= 400 * 2.0  # within one model slice of the 12.5 mm block
    model = _Intensity()
    model.config = config
    k, j, i = np.mgrid[0:40, 0:48, 0:48]
    hu = (-300 + 600 * np.sin(j / 9.0) * np.cos(i / 11.0) + 0 * k).astype(np.float32)  # constant along the slices
    prob = predict_probability(model, hu, (0.625, 1.25, 1.25))
    assert prob.shape == hu.shape  # back on the CT's own slices
    expected = 1.0 / (1.0 + np.exp(-8.0 * (normalise_hu(hu, (-1000.0, 400.0)) - 0.5)))
    assert np.abs(prob - expected)[2:-2, 2:-2, 2:-2].max() < 0.05


def test_a_100_mm_mass_clicked_off_centre_is_segmented_whole():
    spacing = (2.5, 1.25, 1.25)
    k, j, i = np.mgrid[0:56, 0:128, 0:128]
    mm = np.stack([k * spacing[0], j * spacing[1], i * spacing[2]])
    centre = np.array([70.0, 80.0, 80.0])
    ball = ((mm - centre[:, None, None, None]) ** 2).sum(axis=0) <= 50.0 ** 2  # 100 mm across
    hu = np.where(ball, 40.0, -850.0).astype(np.float32)
    geometry = VolumeGeometry(size=(128, 128, 56), spacing=spacing[::-1], origin=(0.0, 0.0, 0.0))
    model = _Intensity()
    click = (28, 64 + 24, 64 - 24)  # 42 mm from the centre, as a hurried click lands
    result = segment_tumor_deep(model, hu, geometry, [click])
    assert compare_masks(result.mask, ball, spacing)["dice"] > 0.97
    small = np.where(((mm - centre[:, None, None, None]) ** 2).sum(axis=0) <= 6.0 ** 2, 40.0, -850.0)
    assert segment_tumor_deep(model, small.astype(np.float32), geometry, [(28, 64, 64)]).mask.sum() > 0


def test_dilation_is_a_disk_of_the_model_radius_in_mm():
    prob = np.zeros((3, 41, 41), np.float32)
    prob[1, 20, 20] = 1.0
    mask = post_process(prob, (2.0, 0.5, 0.5), threshold=0.7, radius_px=3, pixel_mm=1.25)
    area_mm2 = mask[1].sum() * 0.25
    assert area_mm2 == pytest.approx(np.pi * 3.75 ** 2, rel=0.1)  # 3 px of 1.25 mm
    assert not mask[0].any() and not mask[2].any()  # in-plane only
    assert not post_process(prob, (2.0, 0.5, 0.5), 0.7, 0, 1.25)[1, 20, 21]


def test_seeded_result_is_the_component_at_the_seed():
    hu = np.full((12, 64, 64), -850.0, np.float32)
    hu[4:8, 10:20, 10:20] = 40.0
    hu[4:8, 40:50, 40:50] = 40.0
    geometry = VolumeGeometry(size=(64, 64, 12), spacing=(1.25, 1.25, 2.5), origin=(0.0, 0.0, 0.0))
    result = segment_tumor_deep(_Intensity(), hu, geometry, [(5, 45, 45)])
    assert result.mask[5, 45, 45] and not result.mask[5, 15, 15]
    everywhere = segment_tumor_deep(_Intensity(), hu, geometry, [])
    assert everywhere.mask[5, 45, 45] and everywhere.mask[5, 15, 15]


def _train(tmp_path, *extra, processes=1):
    from conftest import run_training

    return run_training("train_r3d_dense_unet.py", "--out", tmp_path / "run", "--synthetic", "1", "--real",
                        "--batch", "1", "--crop", "32", "--validation", "1", "--validate-every", "2", *extra,
                        processes=processes)


def test_training_resumes_and_exports_safetensors(tmp_path):
    proc = _train(tmp_path, "--steps", "2", "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _train(tmp_path, "--steps", "3", "--resume", "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["steps"] == 3 and info["synthetic"] == 1 and info["real"] == []
    assert info["best_step"] in (0, 2, 3) and 0.0 <= info["validation_dice"] <= 1.0  # the best weights are kept
    assert info["config"]["threshold"] in (0.3, 0.4, 0.5, 0.6, 0.7) and info["config"]["slice_mm"] == 2.0
    curve = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curve if "validation_dice" in r] == [0, 2, 3]  # the learning curve, resumed
    model = build_network("r3d-dense-unet", info["config"])
    load_weights(model, tmp_path / "run" / "model.safetensors")
    with pytest.raises(InputError, match="do not fit"):  # the ablation has another bottleneck
        load_weights(RecurrentDenseUNet(RecurrentDenseUNetConfig(use_convlstm=False)), tmp_path / "run" / "model.safetensors")


@pytest.mark.long  # training/common.py's DDP path is in make test through test_recon_gan
def test_training_with_two_processes_gloo(tmp_path):
    proc = _train(tmp_path, "--steps", "2", "--synthetic", "2", processes=2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 2


def test_shipped_models_load_with_their_checksum():
    entries = {n: e for n, e in registry().items() if e["architecture"] == "r3d-dense-unet"}
    assert {"r3d-dense-unet", "r3d-dense-unet-without-lung1", "r3d-dense-unet-without-lidc",
            "r3d-dense-unet-no-convlstm"} <= set(entries)
    for name, entry in entries.items():
        model = load_model(name)
        assert model.config.use_convlstm == (name != "r3d-dense-unet-no-convlstm")
        assert "IBSI GTV" not in entry["training"]["real"]  # non-commercial: evaluation only
    assert registry()["r3d-dense-unet-without-lung1"]["training"]["excluded"] == "lung1"


@pytest.fixture(scope="module")
def lung1(data):
    return read_real_case("lung1", data)


def test_held_out_model_segments_lidc_from_a_seed(data):
    """The leave-one-out model (never trained on LIDC-IDRI-0001) reaches the issue's Dice 0.6
    target on it. (On lung1 its fold does not: see the model card.)"""
    case = read_real_case("LIDC-IDRI-0001", data)
    model = load_model("r3d-dense-unet-without-lidc")
    kji = case.geometry.nearest_kji(np.array(case.seed_lps))
    result = segment_tumor_deep(model, case.hu, case.geometry, [kji])
    scores = compare_masks(result.mask, case.mask, tuple(case.geometry.spacing[::-1]))
    assert scores["dice"] >= 0.6, scores


def test_cli_tumor_r3d_dense_unet(tmp_path, data, lung1):
    from conftest import run_cli

    from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json
    from LungTumorReconLib.io.segmentation import read_segments

    seeds = tmp_path / "seeds.mrk.json"
    seeds.write_text(json.dumps(seeds_to_markups_json([Seed("tumor", lung1.seed_lps)])))
    ct_path = data / "pyradiomics_lung1" / "lung1_image.nrrd"
    out = tmp_path / "out"
    proc = run_cli("run", ct_path, "--out", out, "--seeds", seeds, "--lungs", "none", "--tumor", "r3d-dense-unet",
                   "--recon", "mc", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    tumor = report["methods"]["tumor"]
    assert tumor["name"] == "r3d-dense-unet" and tumor["parameters"]["model"] == "r3d-dense-unet"
    assert tumor["parameters"]["threshold"] == 0.7 and len(report["tumors"]) == 1
    segments, _ = read_segments(out / "segmentation.seg.nrrd")
    assert segments["tumor"][lung1.geometry.nearest_kji(np.array(lung1.seed_lps))]
    # other weights of another architecture are refused before any work, in one line, exit 2
    other = REPO / "LungTumorRecon" / "Resources" / "Models" / registry()["slice-lstm-gan"]["weights"]
    again = tmp_path / "again"
    proc = run_cli("run", ct_path, "--out", again, "--seeds", seeds, "--tumor", "r3d-dense-unet", "--weights", other)
    assert proc.returncode == 2 and "do not fit" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not again.exists()


def test_with_lungs_a_seeded_mask_keeps_to_their_neighbourhood():
    spacing = (2.5, 1.25, 1.25)
    hu = np.full((24, 96, 96), -850.0, np.float32)
    lungs = np.zeros(hu.shape, bool)
    lungs[:, :, :60] = True  # the lung; beyond i = 60 the mediastinum
    hu[6:18, 30:60, 40:80] = 40.0  # a mass against the mediastinum, running on into it at the same HU
    geometry = VolumeGeometry(size=(96, 96, 24), spacing=spacing[::-1], origin=(0.0, 0.0, 0.0))
    model = _Intensity()
    kept = segment_tumor_deep(model, hu, geometry, [(12, 45, 50)], lungs).mask
    assert kept[12, 45, 50] and kept[:, :, 40:60].any()
    assert not kept[:, :, 65:].any()  # over 5 mm from the lung
    assert segment_tumor_deep(model, hu, geometry, [(12, 45, 50)]).mask[:, :, 65:].any()  # no lungs: all of it
    outside = segment_tumor_deep(model, hu, geometry, [(12, 45, 75)], lungs).mask  # clicked in the mediastinum
    assert outside[:, :, 65:].any()
