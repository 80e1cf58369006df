"""What the deep tumour segmenters' training shares: the training cases on the model's grid,
random windows with the papers' augmentation (MONAI transforms), the loop (one process or
several with torchrun / DDP), checkpoints, metrics and installation into the model registry.

Cases:
- synthetic chests (:func:`tumor_datasets.synthetic_tumor_case`), two tumours of random kinds
  each, random slice thickness (1.25–5 mm) and pixel size (0.6–1.2 mm); generator seeds from
  ``FIRST_SYNTHETIC_SEED`` on (the benchmarks' synthetic cases use seeds below it, or 9001+);
- the real cases allowed for training (lung1, LIDC-IDRI-0001; never the IBSI crop, whose
  licence is non-commercial), less the one left out (``--exclude``) for leave-one-out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import (
    DATA,
    MetricsLog,
    export_safetensors,
    install_weights,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    shard,
    wrap,
    write_registry_entry,
)

from LungTumorReconLib.tumor.deep import model_grid_image, to_model_grid
from LungTumorReconDev.synthetic_thorax import TUMOR_KINDS
from LungTumorReconDev.tumor_datasets import TRAINABLE_REAL_CASES, TumorCase, read_real_case, synthetic_tumor_case


FIRST_SYNTHETIC_SEED = 100  # make bench's tumour cases use generator seeds 11, 23, 37 (and 9001+)


@dataclass
class GridCase:
    """A case on the model's grid: image in 0..1 and truth, (k, j', i')."""

    name: str
    image: np.ndarray
    label: np.ndarray


def add_segmenter_arguments(parser, batch: int, lr: float) -> None:
    """The options every deep segmenter's entry point has (beyond ``common.add_run_arguments``)."""
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--crop", type=int, default=64, help="in-plane window size in model pixels")
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic chests (two tumours each)")
    parser.add_argument("--real", nargs="*", default=list(TRAINABLE_REAL_CASES), choices=TRAINABLE_REAL_CASES)
    parser.add_argument("--exclude", choices=TRAINABLE_REAL_CASES, help="leave this real case out")
    parser.add_argument("--cache", type=Path, help="keep the cases on the model grid in this folder between runs")
    parser.add_argument("--install", metavar="NAME", help="write the weights and registry entry into Resources/Models")


def on_model_grid(case: TumorCase, config) -> GridCase:
    spacing_kji = tuple(float(v) for v in case.geometry.spacing[::-1])
    image = model_grid_image(case.hu, spacing_kji, config)[0, 0].numpy()
    label = to_model_grid(case.mask.astype(np.float32), spacing_kji, config.pixel_mm)[0, 0].numpy() > 0.5
    return GridCase(case.name, image, label)


def synthetic_case(seed: int) -> TumorCase:
    rng = np.random.default_rng(seed)
    kinds = tuple(str(k) for k in rng.choice(TUMOR_KINDS, size=2, replace=False))
    pixel, slice_mm = float(rng.uniform(0.6, 1.2)), float(rng.choice([1.25, 2.0, 2.5, 3.0, 5.0]))
    n_in_plane, n_slices = int(300 / pixel) // 8 * 8, int(round(160 / slice_mm))
    return synthetic_tumor_case(int(seed), kinds, size=(n_in_plane, n_in_plane, n_slices), spacing=(pixel, pixel, slice_mm))


def training_cases(config, synthetic: int, real: tuple[str, ...], exclude: str | None, dist, cache: Path | None,
                   seed: int = 0) -> list[GridCase]:
    """This process's share of the training cases on the model's grid (cached as npz)."""
    first = FIRST_SYNTHETIC_SEED + 1000 * seed
    names = [f"synthetic:{s}" for s in range(first, first + synthetic)]
    names += [f"real:{r}" for r in real if r != exclude and r in TRAINABLE_REAL_CASES]
    out = []
    for name in shard(np.array(names, dtype=object), dist):
        path = cache / (name.replace(":", "_").replace(" ", "_") + f"_{config.pixel_mm}mm.npz") if cache else None
        if path is not None and path.is_file():
            data = np.load(path)
            out.append(GridCase(name, data["image"], data["label"]))
            continue
        kind, _, key = name.partition(":")
        case = synthetic_case(int(key)) if kind == "synthetic" else read_real_case(key, DATA)
        grid = on_model_grid(case, config)
        grid.name = name
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, image=grid.image, label=grid.label)
        out.append(grid)
    return out


def cases_for_run(config, args, dist) -> tuple[list[GridCase], dict]:
    """The run's training cases (from ``add_segmenter_arguments``' options) and what
    training.json records of them."""
    t0 = time.perf_counter()
    cases = training_cases(config, args.synthetic, tuple(args.real), args.exclude, dist, args.cache, args.seed)
    if dist.main:
        print(f"{len(cases)} training cases per process in {time.perf_counter() - t0:.0f} s", flush=True)
    real = [r for r in args.real if r != args.exclude]
    return cases, {"synthetic": args.synthetic, "real": real, "excluded": args.exclude}


def augmentation(seed: int):
    """Seed paper 001's augmentations, applied online (MONAI dictionary transforms): random
    rotation, global scaling, horizontal flip, global intensity shift, multiplicative and
    additive noise, blurring. (Random cropping is the window sampler itself.)"""
    from monai.transforms import (
        Compose,
        RandFlipd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandRotated,
        RandScaleIntensityd,
        RandShiftIntensityd,
        RandZoomd,
    )

    keys = ("image", "label")
    transform = Compose([
        RandRotated(keys, range_x=np.deg2rad(10), prob=0.3, mode=("bilinear", "nearest"), padding_mode="border"),
        RandZoomd(keys, min_zoom=(1.0, 0.9, 0.9), max_zoom=(1.0, 1.1, 1.1), prob=0.3, mode=("trilinear", "nearest"),
                  padding_mode="edge", keep_size=True),
        RandFlipd(keys, spatial_axis=2, prob=0.5),
        RandShiftIntensityd("image", offsets=0.03, prob=0.3),
        RandScaleIntensityd("image", factors=0.1, prob=0.3),
        RandGaussianNoised("image", std=0.02, prob=0.3),
        RandGaussianSmoothd("image", sigma_x=(0.0, 0.0), sigma_y=(0.3, 1.0), sigma_z=(0.3, 1.0), prob=0.2),
    ])
    transform.set_random_state(seed)
    return transform


def sample_window(case: GridCase, slices: int, size: int, rng: np.random.Generator, foreground: float = 0.7,
                  magnify: float = 0.3, max_magnification: float = 3.0):
    """A (slices, size, size) window: centred near a tumour voxel with probability
    ``foreground``, else anywhere; padded with air (0) beyond the case's edges. With
    probability ``magnify`` the window is a smaller in-plane region enlarged to ``size``
    (1.3–``max_magnification``×): tumours then look up to 3× larger than any training
    tumour is (the real masses reach 90 mm; the synthetic tumours 32 mm)."""
    shape = np.array(case.image.shape)
    zoom = float(rng.uniform(1.3, max_magnification)) if rng.random() < magnify else 1.0
    side = int(round(size / zoom))
    if rng.random() < foreground and case.label.any():
        points = np.argwhere(case.label)
        centre = points[rng.integers(len(points))] + rng.integers(-side // 4, side // 4 + 1, size=3) * [0, 1, 1]
    else:
        centre = np.array([rng.integers(n) for n in shape])
    extent = np.array([slices, side, side])
    start = centre - extent // 2
    image = np.zeros(extent, dtype=np.float32)
    label = np.zeros(extent, dtype=np.float32)
    src = tuple(slice(max(a, 0), min(a + e, n)) for a, e, n in zip(start, extent, shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, start))
    image[dst] = case.image[src]
    label[dst] = case.label[src]
    if side != size:
        import torch.nn.functional as F

        image = F.interpolate(torch.from_numpy(image)[None, None], size=(slices, size, size), mode="trilinear",
                              align_corners=False)[0, 0].numpy()
        label = F.interpolate(torch.from_numpy(label)[None, None], size=(slices, size, size), mode="nearest")[0, 0].numpy()
    return image, label


def train_segmenter(model: torch.nn.Module, cases: list[GridCase], args, dist, log_extra: dict | None = None,
                    loss_at=None, augment=None, weight_decay: float = 0.0, magnify: float = 0.3) -> dict:
    """The loop: random windows (``sample_window``), augmentation (default: seed paper 001's),
    a loss per step (``loss_at(step)``; default MONAI Dice + cross-entropy), Adam;
    checkpoints every 100 steps (``--resume`` continues); returns what training.json records."""
    from monai.losses import DiceCELoss

    seed_everything(args.seed + dist.rank)
    config = model.config
    net = wrap(model, dist)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=weight_decay)
    if loss_at is None:
        dice_ce = DiceCELoss(sigmoid=True)

        def loss_at(step):
            return dice_ce
    checkpoint = args.out / "checkpoint.pt"
    log = MetricsLog(args.out / "metrics.jsonl", enabled=dist.main)
    step = 0
    if args.resume and checkpoint.is_file():
        step = load_checkpoint(checkpoint, {"model": model}, {"model": optimiser})
    rng = np.random.default_rng(args.seed + 7919 * dist.rank + step)
    augment = augment or augmentation(args.seed + dist.rank + step)
    t0 = time.perf_counter()
    model.train()
    while step < args.steps:
        images, labels = [], []
        for _ in range(args.batch):
            image, label = sample_window(cases[rng.integers(len(cases))], config.window_slices, args.crop, rng,
                                         magnify=magnify)
            out = augment({"image": image[None], "label": label[None]})
            images.append(torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32))
            labels.append(torch.as_tensor(np.asarray(out["label"]), dtype=torch.float32))
        x, y = torch.stack(images).to(dist.device), torch.stack(labels).to(dist.device)
        loss = loss_at(step)(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % 10 == 0 or step == args.steps:
            log.write(step=step, loss=loss.item())
            if dist.main:
                print(f"step {step}: loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if step % 100 == 0 and dist.main:
            save_checkpoint(checkpoint, step, {"model": model}, {"model": optimiser})
    info = {"steps": step, "batch": args.batch, "crop": args.crop, "lr": args.lr, "processes": dist.world,
            "seconds": round(time.perf_counter() - t0, 1), **(log_extra or {})}
    if dist.main:
        save_checkpoint(checkpoint, step, {"model": model}, {"model": optimiser})
        info["sha256"] = export_safetensors(model, args.out / "model.safetensors")
        info["config"] = config.as_dict()
        (args.out / "training.json").write_text(json.dumps(info, indent=2))
    return info


TRAINING_KEYS = ("steps", "batch", "crop", "processes", "seconds", "synthetic", "real", "excluded", "rounds",
                 "dice_steps", "focal_steps")  # what a segmenter's registry entry records of its training


def install(weights: Path, name: str, architecture: str, config, card: str, info: dict) -> None:
    """Copy the weights into Resources/Models and write their registry entry (SHA-256 included)."""
    install_weights(weights, name, architecture, config, card, info, TRAINING_KEYS)


def finish(args, dist, info: dict, architecture: str, config, card: str) -> int:
    """The end of a segmenter's entry point: install (``--install``), report, leave the process group."""
    if dist.main:
        if args.install:
            install(args.out / "model.safetensors", args.install, architecture, config, card, info)
        print(f"done: {args.out / 'model.safetensors'} sha256 {info['sha256']}")
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return 0


def install_ensemble(name: str, members: list[str], card: str) -> None:
    """A registry entry that averages the probabilities of other entries (their SHA-256s are
    checked when each member loads)."""
    from LungTumorReconLib.networks.registry import registry

    entries = registry()
    missing = [m for m in members if m not in entries]
    if missing:
        raise SystemExit(f"error: ensemble members not in the registry: {', '.join(missing)}")
    real = sorted({r for m in members for r in entries[m].get("training", {}).get("real", [])})
    write_registry_entry(name, {"architecture": "ensemble", "members": members, "card": card, "training": {"real": real}})


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write an ensemble entry into the model registry")
    parser.add_argument("name")
    parser.add_argument("members", nargs="+")
    parser.add_argument("--card", required=True)
    args = parser.parse_args()
    install_ensemble(args.name, args.members, args.card)
