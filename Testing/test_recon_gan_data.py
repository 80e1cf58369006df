"""The reconstruction GAN's training data beyond synthetic shapes: real masks cut into thick
slices (never the IBSI crop), their augmentation and targets, and a fold's training run."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from LungTumorReconLib.coordinates import VolumeGeometry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "training"))

import recon_gan_data  # noqa: E402


def _ball(shape=(9, 40, 40), spacing=(1.0, 1.0, 2.5), radius=12.0):
    k, j, i = np.indices(shape)
    centre = (np.asarray(shape) - 1) / 2.0
    mask = (((k - centre[0]) * spacing[2]) ** 2 + ((j - centre[1]) * spacing[1]) ** 2
            + ((i - centre[2]) * spacing[0]) ** 2) <= radius ** 2
    return mask, VolumeGeometry(shape[::-1], spacing, (10.0, -20.0, 30.0))


def test_real_mask_cut_into_thick_slices_keeps_every_factor_th_slice():
    mask, geometry = _ball()
    case = recon_gan_data.cut_thick(mask, geometry, factor=3, offset=1)
    padded = np.pad(mask, ((3, 3), (0, 0), (0, 0)))  # a factor's empty slices beyond each end
    assert np.array_equal(case.truth, padded)
    assert np.array_equal(case.mask, padded[1::3])
    assert case.geometry.spacing == (1.0, 1.0, 7.5)
    # each thick slice lies where its original slice did
    for n in range(case.mask.shape[0]):
        thick_z = case.geometry.kji_to_lps(np.array([n, 0, 0]))[2]
        assert thick_z == pytest.approx(case.truth_geometry.kji_to_lps(np.array([1 + 3 * n, 0, 0]))[2])
    assert case.truth_geometry.kji_to_lps(np.array([3, 0, 0]))[2] == pytest.approx(geometry.origin[2])
    one_slice = np.zeros_like(mask)
    one_slice[4] = mask[4]
    assert recon_gan_data.cut_thick(one_slice, geometry, factor=4, offset=1) is None  # padded slice 8: not kept


def test_augmentation_moves_the_outline_but_keeps_its_size():
    mask, _ = _ball()
    rng = np.random.default_rng(3)
    moved = recon_gan_data.augment_in_plane(mask, rng)
    assert moved.shape == mask.shape
    assert moved.sum() == pytest.approx(mask.sum(), rel=0.1)
    assert np.array_equal(moved.any(axis=(1, 2)), mask.any(axis=(1, 2))[::-1]) or np.array_equal(
        moved.any(axis=(1, 2)), mask.any(axis=(1, 2)))
    assert not np.array_equal(moved, mask)


def test_real_targets_agree_with_the_label_at_its_own_slices():
    """The target between a label's slices is its shape-based interpolation; at its voxel
    centres it is the label itself (as the linear resampling of the label is)."""
    from LungTumorReconLib.surface.gan import prepare_inputs, truth_on_grid

    mask, geometry = _ball(shape=(7, 36, 36), spacing=(0.7, 0.7, 2.5), radius=8.0)
    case = recon_gan_data.cut_thick(mask, geometry, factor=2, offset=1)
    grid = prepare_inputs(case.mask, case.ct, case.geometry).grid
    smooth = recon_gan_data.interpolated_truth_on_grid(case.truth, case.truth_geometry, grid)
    linear = truth_on_grid(case.truth, case.truth_geometry, grid)
    assert 2 * (smooth & linear).sum() / (smooth.sum() + linear.sum()) > 0.95
    real = recon_gan_data.RealMask("lung1", "label", mask, geometry)
    slices, volume, target = recon_gan_data.real_pair(real, seed=5)
    assert slices.shape[1:] == (2, 64, 64) and volume.shape[1:] == target.shape
    prior = volume[0] < 0
    assert 2 * (prior & target).sum() / (prior.sum() + target.sum()) > 0.7  # up to 1 slice in 4 kept


def test_training_never_reads_the_ibsi_crop(data, monkeypatch):
    """Every real mask training reads, by path: lung1 and LIDC-IDRI-0001 only."""
    assert not [c for c in recon_gan_data.REAL_CASES if "ibsi" in c.lower()]
    import LungTumorReconDev.lidc_annotations as lidc
    import LungTumorReconLib.io.ct as ct_io

    read = []
    for module, name in ((ct_io, "read_ct"), (ct_io, "read_label_on_grid"), (lidc, "read_lidc_reader_masks")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda path, *a, _f=original, **k: read.append(str(path)) or _f(path, *a, **k))
    masks = recon_gan_data.read_real_masks(data=data)
    assert read and not [p for p in read if "ibsi" in p.lower()]
    assert sorted({m.case for m in masks}) == ["LIDC-IDRI-0001", "lung1"]
    assert len([m for m in masks if m.case == "LIDC-IDRI-0001"]) == 4  # each reader's mask apart
    assert [m.case for m in recon_gan_data.read_real_masks(("LIDC-IDRI-0001",), data=data)] == ["lung1"]
    with pytest.raises(SystemExit, match="not a trainable real case"):
        recon_gan_data.read_real_masks(("IBSI GTV",), data=data)


@pytest.mark.long  # a training run
def test_fold_training_from_weights_logs_a_learning_curve(tmp_path):
    from conftest import run_training
    from safetensors.torch import save_file

    from LungTumorReconLib.networks.slice_lstm_gan import SliceLstmGan, SliceLstmGanConfig

    init = tmp_path / "base.safetensors"
    base = SliceLstmGan(SliceLstmGanConfig(slice_channels=1, volume_channels=1))
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(init))
    proc = run_training("train_recon_gan.py", "--out", tmp_path / "run", "--cases", "2", "--batch", "2", "--real",
                        "--exclude", "lung1", "--real-pairs", "2", "--validation", "1", "--validate-every", "1",
                        "--steps", "2", "--init", init)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["real"] == ["LIDC-IDRI-0001"] and info["init"] == str(init)
    curve = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curve if "val_msd" in r] == [0, 1, 2]
    assert info["best_step"] in (0, 1, 2) and (tmp_path / "run" / "best.safetensors").is_file()
