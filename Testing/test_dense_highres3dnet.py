"""DenseHighRes3DNet (seed paper 004): DDC / DUC, hybrid dilations, v1 / v2, the ensemble, its
training schedule, the shipped models and ``--tumor dense-highres3dnet``."""

import json

import numpy as np
import pytest
import torch

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.evaluation import dice_2d
from LungTumorReconLib.networks.dense_highres3dnet import (
    DenseHighRes3DNet,
    DenseHighRes3DNetConfig,
    SegmenterEnsemble,
    depth_to_space,
    space_to_depth,
)
from LungTumorReconLib.networks.registry import build_network, load_model, load_weights, registry

SMALL = {"stem": 4, "stage_widths": (4, 4), "groups": 2}


def test_space_to_depth_moves_blocks_into_channels():
    x = torch.arange(2 * 4 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 4, 6)
    y = space_to_depth(x, 2)
    assert y.shape == (1, 16, 2, 2, 3)
    assert sorted(y[0, :8, 0, 0, 0].tolist()) == sorted(x[0, 0, :2, :2, :2].flatten().tolist())
    assert torch.equal(depth_to_space(y, 2), x)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("dense_sampling", [True, False])
def test_versions_keep_the_window_shape(version, dense_sampling):
    model = DenseHighRes3DNet(DenseHighRes3DNetConfig(version=version, use_dense_sampling=dense_sampling, **SMALL))
    x = torch.rand(1, 1, 8, 24, 20)
    with torch.inference_mode():
        assert model.eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="version"):
        DenseHighRes3DNet(DenseHighRes3DNetConfig(version=3))


def test_versions_differ_in_their_lateral_connections():
    v1 = DenseHighRes3DNet(DenseHighRes3DNetConfig(version=1, **SMALL))
    v2 = DenseHighRes3DNet(DenseHighRes3DNetConfig(version=2, **SMALL))
    # v2's second stage sees the DDC features and the first stage (4 + 4 channels); v1's only the first
    assert v1.stages[1][0].layers[1].conv.in_channels == 4
    assert v2.stages[1][0].layers[1].conv.in_channels == 8


def _receptive_holes(dilations) -> int:
    """Along a line through the centre, the input voxels within reach of the stage's dilated
    convolutions (residual paths left out: they would hide the holes) that do not influence
    the centre output: the gridding effect."""
    torch.manual_seed(0)
    config = DenseHighRes3DNetConfig(stem=4, stage_widths=(4,), dilations=dilations, groups=1)
    stage = DenseHighRes3DNet(config).stages[0]
    convs = [conv for block in stage for conv in (block.layers[1], block.layers[3])]
    x = torch.rand(1, 4, 41, 41, 41, requires_grad=True)
    y = x
    for conv in convs:
        y = conv(y)
    y[0, :, 20, 20, 20].sum().backward()
    line = x.grad[0, :, 20, 20].abs().sum(0)
    reach = np.flatnonzero(line.numpy() > 0)
    return int((line[reach.min():reach.max() + 1] == 0).sum())


def test_hybrid_dilations_leave_no_holes_where_repeated_ones_do():
    assert _receptive_holes((1, 2, 5)) == 0
    assert _receptive_holes((2, 2, 2)) > 0


def test_ensemble_averages_probabilities():
    torch.manual_seed(0)
    a, b = (DenseHighRes3DNet(DenseHighRes3DNetConfig(version=v, **SMALL)).eval() for v in (1, 2))
    ensemble = SegmenterEnsemble([a, b])
    x = torch.rand(1, 1, 8, 16, 16)
    with torch.inference_mode():
        expected = (torch.sigmoid(a(x)) + torch.sigmoid(b(x))) / 2
        assert torch.allclose(torch.sigmoid(ensemble(x)), expected, atol=1e-5)
    assert ensemble.config.threshold == 0.5 and ensemble.config.window_stride == 8


def test_dice_2d_averages_the_tumour_slices():
    ref = np.zeros((4, 10, 10), bool)
    ref[1, 2:6, 2:6] = ref[2, 2:6, 2:6] = True
    pred = ref.copy()
    pred[2] = False  # a missed slice: Dice2D counts it as 0
    pred[3, 0, 0] = True  # a slice without tumour in the reference does not count
    assert dice_2d(pred, ref) == pytest.approx(0.5)
    assert dice_2d(pred, np.zeros_like(ref)) is None


@pytest.mark.long  # training rounds, about 25 s
def test_training_runs_dice_then_focal_rounds(tmp_path):
    from conftest import run_training

    proc = run_training("train_dense_highres3dnet.py", "--out", tmp_path / "run", "--rounds", "1", "--dice-steps", "2",
                        "--focal-steps", "1", "--synthetic", "1", "--real", "--batch", "1", "--crop", "32", "--validation", "1",
                        "--cache", tmp_path / "cache", "--version", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["steps"] == 3 and info["dice_steps"] == 2 and info["focal_steps"] == 1
    model = build_network("dense-highres3dnet", info["config"])
    load_weights(model, tmp_path / "run" / "model.safetensors")
    assert model.config.version == 2


def test_shipped_models_and_the_ensemble():
    entries = registry()
    # --tumor dense-highres3dnet: v1 trained on the real-like chests, with its leave-one-out folds
    assert entries["dense-highres3dnet"]["architecture"] == "dense-highres3dnet"
    assert entries["dense-highres3dnet"]["config"]["slice_mm"] == 2.0
    assert set(entries["dense-highres3dnet"]["training"]["real"]) == {"lung1", "LIDC-IDRI-0001"}
    assert entries["dense-highres3dnet-without-lung1"]["training"]["real"] == ["LIDC-IDRI-0001"]
    assert entries["dense-highres3dnet-synthetic"]["training"]["real"] == []
    # the paper's v1 + v2 ensemble (issue 20's synthetic-only training) stays, for the bench
    assert entries["dense-highres3dnet-v1v2"]["architecture"] == "ensemble"
    assert entries["dense-highres3dnet-v1v2"]["members"] == ["dense-highres3dnet-v1", "dense-highres3dnet-v2"]
    ensemble = load_model("dense-highres3dnet-v1v2")
    assert [m.config.version for m in ensemble.members] == [1, 2]
    assert not load_model("dense-highres3dnet-v1-plain-sampling").config.use_dense_sampling
    with pytest.raises(InputError, match="ensemble"):
        load_model("dense-highres3dnet-v1v2", weights=entries["dense-highres3dnet-v1"]["weights"])


def test_cli_tumor_dense_highres3dnet(tmp_path, data):
    from conftest import run_cli

    from LungTumorReconDev.tumor_datasets import read_real_case
    from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json

    case = read_real_case("LIDC-IDRI-0001", data)
    seeds = tmp_path / "seeds.mrk.json"
    seeds.write_text(json.dumps(seeds_to_markups_json([Seed("tumor", case.seed_lps)])))
    out = tmp_path / "out"
    proc = run_cli("run", data / "lidc_idri_0001" / "dicom", "--out", out, "--seeds", seeds, "--lungs", "none",
                   "--tumor", "dense-highres3dnet", "--recon", "none")
    assert proc.returncode == 0, proc.stderr
    tumor = json.loads((out / "report.json").read_text())["methods"]["tumor"]
    assert tumor["name"] == "dense-highres3dnet"
    assert tumor["parameters"]["threshold"] == registry()["dense-highres3dnet"]["config"]["threshold"]
    assert tumor["parameters"]["weights"] == "dense-highres3dnet.safetensors"
    # a weights file that is not there: refused before any work, one line, exit 2
    again = tmp_path / "again"
    proc = run_cli("run", data / "lidc_idri_0001" / "dicom", "--out", again, "--seeds", seeds, "--tumor",
                   "dense-highres3dnet", "--weights", tmp_path / "any.safetensors")
    assert proc.returncode == 2 and "not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not again.exists()
