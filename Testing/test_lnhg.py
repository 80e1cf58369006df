"""LNHG (seed paper 002): the WGAN-GP generator and critic, the Faster R-CNN detector with the
GIoU loss, the fusion of the two branches, the trainer, and ``--tumor lnhg``."""

import json

import numpy as np
import pytest
import torch

from LungTumorReconLib.tumor.lnhg import fuse, three_slice_images
from LungTumorReconLib.networks.registry import build_network, load_weights
from LungTumorReconLib.networks.lnhg_wgan import (
    LnhgGeneratorConfig,
    NoduleGenerator,
    WassersteinCritic,
    gradient_penalty,
)
from LungTumorReconLib.networks.nodule_detector import build_nodule_detector

SMALL = LnhgGeneratorConfig(widths=(2, 4, 4, 8), crop=16)


def _blobs():
    generated = np.zeros((6, 20, 20), bool)
    generated[1:3, 2:6, 2:6] = True  # a nodule
    generated[3:5, 12:16, 12:16] = True  # a false positive
    detected = np.zeros_like(generated)
    detected[2, 1:7, 1:7] = True  # a box on one slice of the nodule
    return generated, detected


def test_fusion_keeps_the_components_a_detection_overlaps():
    generated, detected = _blobs()
    mask, rule = fuse(generated, detected)
    assert rule == "fused" and mask[1:3, 2:6, 2:6].all() and not mask[3:5, 12:16, 12:16].any()
    assert mask.sum() == 2 * 4 * 4  # the whole component, not only the slice the box is on


def test_fusion_falls_back_to_the_other_branch_when_one_is_empty():
    generated, detected = _blobs()
    mask, rule = fuse(generated, np.zeros_like(detected))
    assert rule == "generator only: no detection" and np.array_equal(mask, generated)
    mask, rule = fuse(np.zeros_like(generated), detected)
    assert rule == "detector only: the generator found nothing" and np.array_equal(mask, detected)
    mask, rule = fuse(np.zeros_like(generated), np.zeros_like(detected))
    assert rule == "both empty" and not mask.any()
    far = np.zeros_like(detected)
    far[0, 18:20, 18:20] = True  # a detection that overlaps no candidate: nothing is kept
    mask, rule = fuse(generated, far)
    assert rule == "fused" and not mask.any()


def test_three_slice_images_put_each_slice_between_its_neighbours():
    image = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 3), np.float32)
    stack = three_slice_images(image)
    assert stack.shape == (4, 3, 2, 3)
    assert stack[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_generator_is_full_resolution_with_additive_skips_and_a_relu():
    generator = NoduleGenerator(SMALL).eval()
    x = torch.rand(2, 1, 3, 17, 23) - 0.2
    with torch.no_grad():
        y = generator(x)
        assert y.shape == x.shape and (y >= 0).all()  # any size: no pooling; a non-negative image
        torch.nn.init.zeros_(generator.head.weight)
        torch.nn.init.zeros_(generator.head.bias)
        assert torch.equal(generator(x), torch.relu(x))  # the last skip adds the input itself
    widths = [m.out_channels for m in generator.modules() if isinstance(m, torch.nn.Conv3d)]
    assert widths == [2, 4, 4, 8, 4, 4, 2, 1]  # 32-64-128-256-128-64-32-1 scaled down
    assert LnhgGeneratorConfig().widths == (32, 64, 128, 256)  # the paper's by default


def test_critic_is_sized_from_the_configured_window():
    critic = WassersteinCritic(SMALL)
    assert critic(torch.rand(2, 1, 3, 16, 16)).shape == (2,)
    with pytest.raises(RuntimeError):
        critic(torch.rand(2, 1, 3, 32, 32))
    larger = WassersteinCritic(LnhgGeneratorConfig(crop=48))
    assert larger.score.in_features > critic.score.in_features


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    class Linear(torch.nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.w = torch.full((12,), norm / np.sqrt(12))

        def forward(self, x):
            return x.flatten(1) @ self.w

    real, fake = torch.rand(4, 1, 3, 2, 2), torch.rand(4, 1, 3, 2, 2)
    assert gradient_penalty(Linear(1.0), real, fake).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_penalty(Linear(2.0), real, fake).item() == pytest.approx(10.0, rel=1e-5)  # λ (‖∇‖ − 1)²


def test_detector_box_loss_is_giou_on_decoded_boxes():
    from torchvision.ops import generalized_box_iou_loss

    torch.manual_seed(0)
    detector = build_nodule_detector().train()
    heads = detector.roi_heads
    torch.nn.init.zeros_(heads.box_predictor.bbox_pred.weight)  # zero offsets: the prediction is the proposal
    torch.nn.init.zeros_(heads.box_predictor.bbox_pred.bias)
    features = {"0": torch.rand(1, 128, 16, 16)}
    truth = torch.tensor([[20.0, 20.0, 60.0, 60.0]])
    target = [{"boxes": truth, "labels": torch.tensor([1])}]
    _, losses = heads(features, [truth.clone()], [(128, 128)], target)
    assert losses["loss_box_reg"].item() == pytest.approx(0.0, abs=1e-6)  # the true box itself
    shifted = truth + torch.tensor([[4.0, 2.0, 4.0, 2.0]])  # IoU > 0.5: a positive proposal
    _, losses = heads(features, [shifted], [(128, 128)], target)
    expected = generalized_box_iou_loss(shifted, truth).item() / 2  # two positives: it and the true box
    assert losses["loss_box_reg"].item() == pytest.approx(expected, rel=1e-4)


def test_detector_keeps_the_native_pixel_size():
    detector = build_nodule_detector().eval()
    images, _ = detector.transform([torch.rand(3, 100, 120)])
    assert images.image_sizes == [(100, 120)]  # torchvision would resize to 800 px
    with torch.no_grad():
        out = detector([torch.rand(3, 100, 120)])
    assert out[0]["boxes"].shape[1] == 4


@pytest.mark.parametrize("branch", ["generator", "detector"])
def test_training_exports_each_branch(tmp_path, branch):
    from conftest import run_training

    extra = ["--no-perceptual"] if branch == "generator" else []
    proc = run_training("train_lnhg.py", "--branch", branch, "--out", tmp_path / "run", "--steps", "2", "--batch", "2",
                        "--crop", "32", "--synthetic", "1", "--real", "--cache", tmp_path / "cache", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["steps"] == 2 and info["real"] == []
    model = build_network("lnhg-generator" if branch == "generator" else "nodule-detector", info["config"])
    load_weights(model, tmp_path / "run" / "model.safetensors")
    if branch == "generator":
        assert info["perceptual"] == "none" and info["adversarial"] is True
        assert model.config.crop == 32


def test_detection_counts_false_positive_components_and_missed_tumours():
    from LungTumorReconLib.evaluation import detection_counts

    generated, detected = _blobs()
    truth = np.zeros_like(generated)
    truth[1:3, 3:5, 3:5] = True  # found
    truth[5, 18:20, 0:2] = True  # missed
    counts = detection_counts(generated, truth)
    assert counts == {"false_positive_components": 1, "false_negative_tumours": 1, "components": 2, "tumours": 2}


def test_shipped_branches_load_with_their_checksum():
    from LungTumorReconLib.networks.registry import load_model, registry

    entries = registry()
    for name in ("lnhg-generator", "lnhg-generator-no-adversarial", "lnhg-generator-no-perceptual"):
        generator = load_model(name)
        assert isinstance(generator, NoduleGenerator) and entries[name]["training"]["real"] == []
    assert entries["lnhg-generator-no-adversarial"]["training"]["adversarial"] is False
    assert entries["lnhg-generator-no-perceptual"]["training"]["perceptual"] == "none"
    assert entries["lnhg-generator"]["training"]["perceptual"] == "resunet-tumor encoder"
    assert load_model("lnhg-detector").config.anchor_sizes == (8, 16, 32, 64, 128)


def test_pipeline_lnhg_fuses_and_returns_the_heterogeneity_image(tmp_path, data):
    """On LIDC-IDRI-0001, which neither branch saw: the issue's Dice 0.6 from a seed, the
    fusion rule in the report, and the nodule image inside the mask only."""
    from LungTumorReconLib.evaluation import dice
    from LungTumorReconLib.pipeline.options import PipelineOptions
    from LungTumorReconLib.pipeline.run import run_pipeline
    from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json
    from LungTumorReconDev.tumor_datasets import read_real_case

    case = read_real_case("LIDC-IDRI-0001", data)
    seeds = tmp_path / "seeds.mrk.json"
    seeds.write_text(json.dumps(seeds_to_markups_json([Seed("tumor", case.seed_lps)])))
    result = run_pipeline(data / "lidc_idri_0001" / "dicom",
                          PipelineOptions(lungs="none", tumor="lnhg", recon="none", device="cpu", seeds_path=seeds))
    tumor = result.segments["tumor"]
    assert dice(tumor, case.mask) >= 0.6
    parameters = result.methods["tumor"]["parameters"]
    assert parameters["detector"] == "lnhg-detector" and parameters["fusion"] == ["fused"]
    assert result.heterogeneity[tumor].max() > 0 and not result.heterogeneity[~tumor].any()
