"""Seed paper 003's two-stage ResUNet: the network's blocks, the histogram equalisation, the
organ stage (``--lungs resunet``), the trainer, the shipped models and ``--tumor resunet``."""

import json

import numpy as np
import pytest
import torch

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.evaluation import dice
from LungTumorReconLib.lungs.resunet import lungs_from_probability
from LungTumorReconLib.networks.registry import build_network, load_model, load_weights, registry
from LungTumorReconLib.networks.resunet import (
    IDENTITY_CURVE,
    PreActResidualBlock,
    ResUNet,
    ResUNetConfig,
    equalisation_curve,
    equalise,
    intensity_histogram,
)

SMALL = {"widths": (4, 4, 8, 8)}


@pytest.mark.parametrize("channels", [1, 2])
def test_network_keeps_the_slice_layout(channels):
    model = ResUNet(ResUNetConfig(out_channels=channels, **SMALL)).eval()
    with torch.no_grad():
        assert model(torch.rand(3, 1, 1, 24, 40)).shape == (3, channels, 1, 24, 40)  # windows of one slice
        assert model(torch.rand(2, 1, 2, 16, 16)).shape == (2, channels, 2, 16, 16)  # slices are independent
        assert model(torch.rand(2, 1, 16, 16)).shape == (2, channels, 16, 16)


def test_slices_of_a_window_are_segmented_independently():
    model = ResUNet(ResUNetConfig(**SMALL)).eval()
    x = torch.rand(1, 1, 2, 16, 16)
    with torch.no_grad():
        both = model(x)
        second = model(x[:, :, 1:])
    assert torch.allclose(both[:, :, 1:], second, atol=1e-6)


def test_residual_blocks_are_pre_activated_with_a_shortcut():
    block = PreActResidualBlock(4, 4)
    assert isinstance(block.body[0], torch.nn.BatchNorm2d) and isinstance(block.body[1], torch.nn.ReLU)
    assert isinstance(block.shortcut, torch.nn.Identity)
    torch.nn.init.zeros_(block.body[-1].weight)  # the residual branch off: the block is the identity
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block.eval()(x), x)
    strided = PreActResidualBlock(4, 8, stride=2)
    assert strided(x).shape == (2, 8, 4, 4) and not isinstance(strided.shortcut, torch.nn.Identity)
    first = PreActResidualBlock(1, 4, first=True)
    assert isinstance(first.body[0], torch.nn.Conv2d)  # the image is not normalised before the first conv


def test_equalisation_flattens_the_training_histogram():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.beta(2, 8, 20000), np.zeros(50000)])  # skewed, and air outside the body
    curve = equalisation_curve(intensity_histogram(values))
    assert curve[0] == 0.0 and curve[-1] == pytest.approx(1.0) and np.all(np.diff(curve) >= 0)
    mapped = equalise(torch.from_numpy(values[values > 0]).float(), torch.tensor(curve)).numpy()
    quantiles = np.quantile(mapped, [0.1, 0.25, 0.5, 0.75, 0.9])
    assert np.allclose(quantiles, [0.1, 0.25, 0.5, 0.75, 0.9], atol=0.03), quantiles  # uniform after
    assert not np.allclose(np.quantile(values[values > 0], [0.5]), 0.5, atol=0.1)  # and was not before
    assert equalisation_curve(np.zeros(8)) == IDENTITY_CURVE
    x = torch.linspace(0, 1, 11)
    assert torch.allclose(equalise(x, torch.tensor(IDENTITY_CURVE)), x, atol=1e-6)


def test_organ_stage_names_lungs_by_side_and_keeps_the_largest_component():
    probability = np.zeros((2, 4, 20, 20), dtype=np.float32)
    probability[0, :, 5:15, 2:8] = 0.9  # the lung at low i
    probability[0, 1, 1, 1] = 0.95  # a speck: not the largest component
    probability[1, :, 5:15, 12:18] = 0.8
    probability[1, :, 9:11, 14:16] = 0.2  # a hole (a vessel): filled
    geometry = VolumeGeometry(size=(20, 20, 4), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    lungs = lungs_from_probability(probability, geometry, threshold=0.5)
    assert lungs["right lung"][:, 5:15, 2:8].all() and not lungs["right lung"][1, 1, 1]  # LPS -x: patient right
    assert lungs["left lung"][:, 5:15, 12:18].all() and lungs["left lung"].sum() == 4 * 10 * 6
    mirrored = VolumeGeometry(size=(20, 20, 4), spacing=(1.0, 1.0, 2.0), origin=(19.0, 0.0, 0.0),
                              direction=(-1.0, 0, 0, 0, 1, 0, 0, 0, 1))
    swapped = lungs_from_probability(probability, mirrored, threshold=0.5)
    assert np.array_equal(swapped["left lung"], lungs["right lung"])  # i runs to patient right here
    assert lungs_from_probability(np.zeros_like(probability), geometry, 0.5) == {}


@pytest.mark.parametrize("stage", ["lungs", "tumor"])
def test_training_records_its_equalisation_and_exports(tmp_path, stage):
    from conftest import run_training

    extra = ["--synthetic", "0"] if stage == "lungs" else ["--synthetic", "1", "--real", "--validation", "1"]
    proc = run_training("train_resunet.py", "--stage", stage, "--out", tmp_path / "run", "--steps", "2",
                        "--batch", "2", "--crop", "32", "--cache", tmp_path / "cache", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["steps"] == 2
    model = build_network("resunet", info["config"])
    load_weights(model, tmp_path / "run" / "model.safetensors")
    assert model.config.out_channels == (2 if stage == "lungs" else 1)
    assert model.config.equalisation != IDENTITY_CURVE  # computed from the training images
    assert info["real"] == (["cip_chest64"] if stage == "lungs" else [])


def test_paper_scores_from_the_confusion_matrix():
    from LungTumorReconLib.evaluation import confusion_scores

    pred, ref = np.zeros((4, 10, 10), bool), np.zeros((4, 10, 10), bool)
    pred[1, 2:6, 2:6] = True  # 16 voxels, 9 of them in the reference
    ref[1, 3:7, 3:7] = True
    s = confusion_scores(pred, ref)
    assert s["iou"] == pytest.approx(9 / 23) and s["true_positive_rate"] == pytest.approx(9 / 16)
    assert s["pixel_accuracy"] == pytest.approx((400 - 14) / 400)
    one_slice = confusion_scores(pred, ref, (slice(1, 2), slice(None), slice(None)))
    assert one_slice["pixel_accuracy"] == pytest.approx((100 - 14) / 100)  # true negatives depend on the region
    assert confusion_scores(pred, np.zeros_like(ref))["true_positive_rate"] is None


@pytest.fixture(scope="module")
def thorax():
    """A synthetic chest no ResUNet trained on (generator seed 7), with exact lung and tumour truth."""
    from LungTumorReconDev.synthetic_thorax import make_thorax

    return make_thorax(size=(224, 224, 60), spacing=(1.4, 1.4, 3.0), tumors=("solid", "juxta-pleural"), seed=7)


def test_shipped_models_load_with_their_checksum():
    entries = {n: e for n, e in registry().items() if e["architecture"] == "resunet"}
    assert {"resunet-lungs", "resunet-tumor", "resunet-tumor-without-lung1", "resunet-tumor-without-lidc"} <= set(entries)
    for name, entry in entries.items():
        model = load_model(name)
        assert model.config.out_channels == (2 if name == "resunet-lungs" else 1)
        assert model.config.equalisation != IDENTITY_CURVE
        assert "IBSI GTV" not in entry["training"]["real"]  # non-commercial: evaluation only
    assert entries["resunet-lungs"]["training"]["real"] == ["cip_chest64"]
    assert entries["resunet-tumor-without-lidc"]["training"]["excluded"] == "LIDC-IDRI-0001"


def test_organ_stage_segments_both_lungs_of_an_unseen_chest(thorax):
    from LungTumorReconLib.lungs.resunet import segment_lungs_resunet

    lungs = segment_lungs_resunet(thorax.ct, thorax.geometry)
    for name in ("right lung", "left lung"):
        assert dice(lungs[name], thorax.labels[name]) >= 0.9, name


def test_tumour_stage_from_a_seed_on_unseen_data(thorax, data):
    from scipy import ndimage as ndi

    from LungTumorReconDev.tumor_datasets import read_real_case
    from LungTumorReconLib.tumor.deep import segment_tumor_deep

    kji = thorax.geometry.nearest_kji(np.array(thorax.seeds["tumor"]))  # the solid tumour's centre
    labels, _ = ndi.label(thorax.labels["tumor"])
    solid = labels == labels[kji]
    model = load_model("resunet-tumor")
    result = segment_tumor_deep(model, thorax.ct, thorax.geometry, [kji])
    assert dice(result.mask, solid) >= 0.7
    case = read_real_case("LIDC-IDRI-0001", data)  # the fold that never saw it
    result = segment_tumor_deep(load_model("resunet-tumor-without-lidc"), case.hu, case.geometry,
                                [case.geometry.nearest_kji(np.array(case.seed_lps))])
    assert dice(result.mask, case.mask) >= 0.6


def test_cli_runs_both_stages(tmp_path, thorax):
    from conftest import run_cli

    from LungTumorReconLib.io.ct import write_image
    from LungTumorReconLib.io.segmentation import read_segments

    ct_path = tmp_path / "chest.nrrd"
    write_image(thorax.ct, thorax.geometry, ct_path)
    out = tmp_path / "out"
    proc = run_cli("run", ct_path, "--out", out, "--lungs", "resunet", "--tumor", "resunet", "--recon", "none")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["methods"]["lungs"]["name"] == "resunet"
    assert report["methods"]["lungs"]["parameters"]["model"] == "resunet-lungs"
    assert report["methods"]["tumor"]["parameters"]["region"] == "lungs' bounding box"
    segments, _ = read_segments(out / "segmentation.seg.nrrd")
    assert dice(segments["right lung"], thorax.labels["right lung"]) >= 0.9
    assert (segments["tumor"] & thorax.labels["tumor"]).any()
    # another lung method: the tumour stage still takes its region from the organ stage
    again = tmp_path / "again"
    proc = run_cli("run", ct_path, "--out", again, "--lungs", "threshold", "--tumor", "resunet", "--recon", "none")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((again / "report.json").read_text())
    assert report["methods"]["lungs"]["name"] == "threshold"
    assert report["methods"]["tumor"]["parameters"]["region"] == "ResUNet organ stage's lungs' bounding box"
