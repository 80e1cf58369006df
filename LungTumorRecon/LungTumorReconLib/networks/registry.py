"""The shipped models (``Resources/Models/registry.json``) and safe weight loading.

Each entry names its architecture and configuration, its weights file (safetensors) and that
file's SHA-256, which is checked before loading, and its model card. Weights are only ever
read as safetensors (tensors, no code); a file given with ``--weights`` must be safetensors
with exactly the architecture's tensor names and shapes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.resources import resource_path


def registry() -> dict[str, dict]:
    path = resource_path("Models", "registry.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_network(architecture: str, config: dict):
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if architecture == "slice-lstm-gan":
        from LungTumorReconLib.networks.slice_lstm_gan import SliceLstmGan, SliceLstmGanConfig

        return SliceLstmGan(SliceLstmGanConfig(**fields))
    if architecture == "r3d-dense-unet":
        from LungTumorReconLib.networks.recurrent_dense_unet import RecurrentDenseUNet, RecurrentDenseUNetConfig

        return RecurrentDenseUNet(RecurrentDenseUNetConfig(**fields))
    if architecture == "dense-highres3dnet":
        from LungTumorReconLib.networks.dense_highres3dnet import DenseHighRes3DNet, DenseHighRes3DNetConfig

        return DenseHighRes3DNet(DenseHighRes3DNetConfig(**fields))
    if architecture == "resunet":
        from LungTumorReconLib.networks.resunet import ResUNet, ResUNetConfig

        return ResUNet(ResUNetConfig(**fields))
    if architecture == "lnhg-generator":
        from LungTumorReconLib.networks.lnhg_wgan import LnhgGeneratorConfig, NoduleGenerator

        return NoduleGenerator(LnhgGeneratorConfig(**fields))
    if architecture == "nodule-detector":
        from LungTumorReconLib.networks.nodule_detector import NoduleDetectorConfig, build_nodule_detector

        return build_nodule_detector(NoduleDetectorConfig(**fields))
    raise InputError(f"unknown architecture {architecture!r}")


def load_model(name: str, device: str = "cpu", weights: Path | None = None):
    """The registry's model ``name`` in eval mode, with its shipped weights (SHA-256 checked)
    or with ``weights`` (a safetensors file of the same architecture)."""
    entries = registry()
    if name not in entries:
        raise InputError(f"no model {name!r} in the registry; known: {', '.join(entries)}")
    entry = entries[name]
    if entry["architecture"] == "ensemble":  # the mean probability of other registry models
        if weights is not None:
            raise InputError(f"{name!r} is an ensemble of {', '.join(entry['members'])}: give weights for one of them",
                             option="weights")
        from LungTumorReconLib.networks.dense_highres3dnet import SegmenterEnsemble

        return SegmenterEnsemble([load_model(member, device) for member in entry["members"]]).to(device).eval()
    model = build_network(entry["architecture"], entry["config"])
    if weights is None:
        weights = resource_path("Models", entry["weights"])
        if not weights.is_file():
            raise InputError(f"the weights of {name!r} are missing ({weights.name}); reinstall the extension")
        if sha256(weights) != entry["sha256"]:
            raise InputError(f"the weights of {name!r} do not match their SHA-256 in the registry", weights)
    load_weights(model, Path(weights))
    return model.to(device).eval()


def load_weights(model, path: Path) -> None:
    """safetensors only; names and shapes must be exactly the model's."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise InputError("weights file not found", path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"not a safetensors weights file ({str(exc).splitlines()[0]})", path) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or extra or wrong:
        problems = [f"{len(missing)} tensors missing" if missing else "",
                    f"{len(extra)} unexpected tensors" if extra else "",
                    f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[0]})" if wrong else ""]
        raise InputError(f"weights do not fit this architecture: {', '.join(p for p in problems if p)}", path)
    model.load_state_dict(state, strict=True)
