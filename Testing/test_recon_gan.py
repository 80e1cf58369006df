"""The ResNet → LSTM → 3D GAN reconstruction: inputs on the tumour's grid, the network,
safe weight loading, and the training script (one process, and two with torchrun/gloo)."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from LungTumorReconDev.thick_slice_cases import synthetic_thick_case
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.networks.registry import build_network, load_model, load_weights, registry
from LungTumorReconLib.networks.slice_lstm_gan import SliceLstmGan, SliceLstmGanConfig, make_discriminator
from LungTumorReconLib.surface.gan import gan_surface, prepare_inputs, truth_on_grid
from LungTumorReconLib.surface.marching_cubes import surface_to_mask

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def case():
    return synthetic_thick_case("solid", 4343, radius_mm=8.0)


def test_inputs_put_the_grid_on_the_tumour(case):
    inputs = prepare_inputs(case.mask, case.ct, case.geometry)
    assert inputs.volume.shape == (2, 64, 64, 64)
    assert inputs.slices.shape[1:] == (2, 64, 64) and len(inputs.slices) == case.mask.any(axis=(1, 2)).sum() + 2
    # the grid's inside (negative distance) is the truth resampled onto it, up to the slices' blur
    target = truth_on_grid(case.truth, case.truth_geometry, inputs.grid)
    prior = inputs.volume[0] < 0
    assert 2 * (prior & target).sum() / (prior.sum() + target.sum()) > 0.9
    # the tumour is whole inside the grid: nothing on its faces
    assert not target[[0, -1]].any() and not target[:, [0, -1]].any() and not target[:, :, [0, -1]].any()


def test_untrained_generator_starts_from_interpolation(case):
    """The generator's last layer starts at zero, so its surface is interpolation + MC's."""
    model = SliceLstmGan(SliceLstmGanConfig()).eval()
    surface = gan_surface(case.mask, case.geometry, case.ct, model=model)
    voxels = surface_to_mask(surface, case.truth_geometry)
    dice = 2 * (voxels & case.truth).sum() / (voxels.sum() + case.truth.sum())
    assert dice > 0.9


def test_discriminator_takes_any_grid():
    config = SliceLstmGanConfig()
    d = make_discriminator(config)
    for size in (32, 48):
        assert d(torch.zeros(2, 1, size, size, size), torch.zeros(2, 2, size, size, size)).shape == (2, 1)


def test_shipped_weights_load_with_their_checksum():
    entries = registry()
    assert "slice-lstm-gan" in entries
    model = load_model("slice-lstm-gan")
    assert not model.training
    assert entries["slice-lstm-gan"]["sha256"] and (REPO / "LungTumorRecon" / "Resources" / "Models" /
                                                    entries["slice-lstm-gan"]["card"]).is_file()


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/lungtumorrecon-pickle-ran",))


def test_weights_that_are_not_safetensors_are_refused_unrun(tmp_path):
    marker = Path("/tmp/lungtumorrecon-pickle-ran")
    marker.unlink(missing_ok=True)
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"weights": _Boom()}))
    model = SliceLstmGan(SliceLstmGanConfig())
    with pytest.raises(InputError, match="not a safetensors"):
        load_weights(model, bad)
    assert not marker.exists()
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"encoder.head.weight": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(InputError, match="do not fit"):
        load_weights(model, wrong)


def _train(tmp_path, *extra, processes=1):
    from conftest import run_training

    return run_training("train_recon_gan.py", "--out", tmp_path / "run", "--cases", "4", "--batch", "2", *extra,
                        processes=processes)


def test_training_resumes_and_exports_safetensors(tmp_path):
    proc = _train(tmp_path, "--steps", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _train(tmp_path, "--steps", "4", "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["steps"] == 4 and info["variant"] == "gan"
    model = build_network("slice-lstm-gan", info["config"])
    load_weights(model, tmp_path / "run" / "model.safetensors")
    with pytest.raises(InputError, match="do not fit"):  # the with-ct architecture has other shapes
        load_weights(SliceLstmGan(SliceLstmGanConfig()), tmp_path / "run" / "model.safetensors")


def test_training_with_two_processes_gloo(tmp_path):
    proc = _train(tmp_path, "--steps", "2", processes=2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 2


def test_cli_recon_weights_are_checked_before_any_work(tmp_path, small_case, capsys):
    from conftest import run_cli

    from LungTumorReconLib.cli import main

    ct_path, _, seeds_path, _, _ = small_case
    marker = Path("/tmp/lungtumorrecon-pickle-ran")
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weights": _Boom()}))
    out = tmp_path / "out"
    for extra in (["--recon", "gan", "--recon-weights", str(evil)], ["--recon", "mc", "--recon-weights", str(evil)],
                  ["--tumor", "r3d-dense-unet", "--weights", str(evil)], ["--tumor", "lnhg", "--weights", str(evil)],
                  ["--tumor", "resunet", "--weights", str(evil)]):  # every --weights path: refused, nothing run
        args = ["run", str(ct_path), "--out", str(out), "--seeds", str(seeds_path), *extra]
        if extra[0] == "--recon" and extra[1] == "gan":  # the installed command once, the rest in this process
            proc = run_cli(*args)
            code, lines = proc.returncode, proc.stderr.strip().splitlines()
        else:
            code = main([*args, "--quiet"])
            lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), lines
        assert not out.exists() and not marker.exists()
