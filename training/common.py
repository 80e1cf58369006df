"""What every training entry point shares: seeds, devices, one process or several
(torchrun / DistributedDataParallel), resumable checkpoints, a metrics log, safetensors export.

Checkpoints hold only tensors, numbers and strings, so they load with
``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "LungTumorRecon"))
sys.path.insert(0, str(REPO))  # LungTumorReconDev: synthetic cases and dataset readers


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Distributed:
    """One process, or one of torchrun's (gloo on CPU, NCCL on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: no CUDA GPU here")
    if world > 1:
        backend = "nccl" if device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        if device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    return Distributed(rank, world, device)


def add_run_arguments(parser) -> None:
    """The options every training entry point has: --out, --seed, --device, --threads, --resume."""
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")


def start(args) -> Distributed:
    """Processes and devices (:func:`setup`), CPU threads, and the output folder."""
    dist = setup(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return dist


def wrap(model: torch.nn.Module, dist: Distributed) -> torch.nn.Module:
    if dist.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=None if dist.device == "cpu" else [torch.device(dist.device).index])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def shard(indices: np.ndarray, dist: Distributed) -> np.ndarray:
    return indices[dist.rank :: dist.world]


def save_checkpoint(path: Path, step: int, modules: dict[str, torch.nn.Module], optimisers: dict) -> None:
    state = {"step": step}
    state.update({f"model/{k}": unwrap(m).state_dict() for k, m in modules.items()})
    state.update({f"optim/{k}": o.state_dict() for k, o in optimisers.items()})
    state["rng/torch"] = torch.get_rng_state()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash never leaves half a checkpoint


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module], optimisers: dict) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for k, m in modules.items():
        unwrap(m).load_state_dict(state[f"model/{k}"])
    for k, o in optimisers.items():
        o.load_state_dict(state[f"optim/{k}"])
    torch.set_rng_state(state["rng/torch"])
    return int(state["step"])


class MetricsLog:
    """One JSON object per line: step, losses, seconds since the start."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled, self.t0 = path, enabled, time.perf_counter()

    def write(self, **values) -> None:
        if not self.enabled:
            return
        values["seconds"] = round(time.perf_counter() - self.t0, 2)
        with open(self.path, "a") as f:
            f.write(json.dumps(values) + "\n")


def write_registry_entry(name: str, entry: dict) -> None:
    """Set ``name``'s entry in Resources/Models/registry.json (the file model_registry reads)."""
    from LungTumorReconLib.networks.registry import registry as read_registry
    from LungTumorReconLib.resources import resource_path

    registry = read_registry()
    registry[name] = entry
    (resource_path("Models") / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")


def install_weights(weights: Path, name: str, architecture: str, config, card: str, info: dict,
                    training_keys: tuple[str, ...], **extra) -> None:
    """Copy the weights into Resources/Models and write their registry entry: architecture,
    configuration, ``extra`` fields, weights file, SHA-256, model card, and the ``training_keys``
    of ``info`` that it has."""
    import shutil

    from LungTumorReconLib.resources import resource_path

    models = resource_path("Models")
    models.mkdir(exist_ok=True)
    target = models / f"{name}.safetensors"
    shutil.copyfile(weights, target)
    write_registry_entry(name, {
        "architecture": architecture,
        "config": config.as_dict(),
        **extra,
        "weights": target.name,
        "sha256": info["sha256"],
        "card": card,
        "training": {k: info[k] for k in training_keys if k in info},
    })


def export_safetensors(model: torch.nn.Module, path: Path) -> str:
    """The weights as safetensors; returns their SHA-256."""
    from safetensors.torch import save_file

    from LungTumorReconLib.networks.registry import sha256

    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    save_file(state, str(path))
    return sha256(path)
