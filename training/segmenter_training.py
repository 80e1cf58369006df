"""What the deep tumour segmenters' training shares: the training cases on the model's grid,
random windows with the papers' augmentation (MONAI transforms), the loop (one process or
several with torchrun / DDP), checkpoints, metrics and installation into the model registry.

Cases:
- synthetic chests drawn to cover real CT (:func:`tumor_datasets.real_like_synthetic_case`):
  tumours 4–100 mm across, masses against the pleura with dense lung beside them, slices
  0.6–5 mm, pixels 0.5–1 mm, sharp and smooth kernels; generator seeds from
  ``FIRST_SYNTHETIC_SEED`` on (the benchmarks' synthetic cases use seeds below it, or 9001+;
  validation uses 5000+);
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

from LungTumorReconDev.tumor_datasets import TRAINABLE_REAL_CASES, TumorCase, read_real_case, real_like_synthetic_case
from LungTumorReconLib.tumor.deep import model_grid_image, model_grid_label

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
    parser.add_argument("--slice-mm", type=float, default=2.0, help="the model's slice spacing (the CT is resampled)")
    parser.add_argument("--validation", type=int, default=6, help="held-out synthetic chests for validation")
    parser.add_argument("--validate-every", type=int, default=100, help="steps between validations")
    parser.add_argument("--patience", type=int, default=8, help="validations without a gain before stopping")
    parser.add_argument("--minutes", type=float, default=60.0, help="stop after this long (the best weights are kept)")
    parser.add_argument("--init", type=Path, help="start from these weights (safetensors of the same model)")
    parser.add_argument("--select", choices=("best", "last"), default="best",
                        help="export the best weights by validation, or the last (a fixed-length fine-tune on real "
                             "cases, which the synthetic validation cannot judge)")
    parser.add_argument("--real-share", type=float, default=0.0,
                        help="share of windows from the real cases (0: every case alike)")


def on_model_grid(case: TumorCase, config) -> GridCase:
    spacing_kji = tuple(float(v) for v in case.geometry.spacing[::-1])
    image = model_grid_image(case.hu, spacing_kji, config)[0, 0].numpy()
    label = model_grid_label(case.mask, spacing_kji, config)
    return GridCase(case.name, image, label)


def grid_cases(names, config, cache: Path | None) -> list[GridCase]:
    """Cases by name (``synthetic:SEED`` or ``real:NAME``) on the model's grid, cached as npz."""
    out = []
    for name in names:
        grid_tag = f"{config.pixel_mm}mm_{getattr(config, 'slice_mm', None) or 'native'}"
        path = cache / (name.replace(":", "_").replace(" ", "_") + f"_v2_{grid_tag}.npz") if cache else None
        if path is not None and path.is_file():
            data = np.load(path)
            out.append(GridCase(name, data["image"], data["label"]))
            continue
        kind, _, key = name.partition(":")
        case = real_like_synthetic_case(int(key)) if kind == "synthetic" else read_real_case(key, DATA)
        grid = on_model_grid(case, config)
        grid.name = name
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, image=grid.image, label=grid.label)
        out.append(grid)
    return out


def training_cases(config, synthetic: int, real: tuple[str, ...], exclude: str | None, dist, cache: Path | None,
                   seed: int = 0) -> list[GridCase]:
    """This process's share of the training cases on the model's grid (cached as npz)."""
    first = FIRST_SYNTHETIC_SEED + 1000 * seed
    names = [f"synthetic:{s}" for s in range(first, first + synthetic)]
    names += [f"real:{r}" for r in real if r != exclude and r in TRAINABLE_REAL_CASES]
    return grid_cases(shard(np.array(names, dtype=object), dist), config, cache)


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


def padded_window(case: GridCase, centre, extent) -> tuple[np.ndarray, np.ndarray]:
    """The (image, label) window of ``extent`` centred at ``centre``, float32, padded with air (0)
    beyond the case's edges."""
    extent = np.asarray(extent)
    start = np.asarray(centre) - extent // 2
    image = np.zeros(extent, dtype=np.float32)
    label = np.zeros(extent, dtype=np.float32)
    src = tuple(slice(max(a, 0), min(a + e, n)) for a, e, n in zip(start, extent, case.image.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, start))
    image[dst], label[dst] = case.image[src], case.label[src]
    return image, label


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
    image, label = padded_window(case, centre, (slices, side, side))
    if side != size:
        import torch.nn.functional as F

        image = F.interpolate(torch.from_numpy(image)[None, None], size=(slices, size, size), mode="trilinear",
                              align_corners=False)[0, 0].numpy()
        label = F.interpolate(torch.from_numpy(label)[None, None], size=(slices, size, size), mode="nearest")[0, 0].numpy()
    return image, label


def train_segmenter(model: torch.nn.Module, cases: list[GridCase], args, dist, log_extra: dict | None = None,
                    loss_at=None, augment=None, weight_decay: float = 0.0, magnify: float = 0.3) -> dict:
    """The loop: random windows (``sample_window``), augmentation (default: seed paper 001's),
    a loss per step (``loss_at(step)``; default MONAI Dice + cross-entropy), Adam; validation
    every ``--validate-every`` steps (the learning curve in metrics.jsonl), the best weights
    kept, early stopping (``--patience``) and a time budget (``--minutes``); checkpoints at
    each validation (``--resume`` continues). Returns what training.json records."""
    from monai.losses import DiceCELoss
    from segmenter_validation import EarlyStopping

    seed_everything(args.seed + dist.rank)
    config = model.config
    if args.init and not args.resume:
        from LungTumorReconLib.networks.registry import load_weights

        load_weights(model, args.init)
    net = wrap(model, dist)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=weight_decay)
    if loss_at is None:
        dice_ce = DiceCELoss(sigmoid=True)

        def loss_at(step):
            return dice_ce
    checkpoint = args.out / "checkpoint.pt"
    log = MetricsLog(args.out / "metrics.jsonl", enabled=dist.main)
    validation, heldout = validation_sets(config, args) if dist.main and args.validation else (None, None)
    if not args.validation:
        args.select = "last"
    stopping = EarlyStopping(args.patience)
    step = resume(args, model, optimiser, stopping) if args.resume and checkpoint.is_file() else 0
    if validation is not None and step == 0:
        record_validation(model, step, validation, heldout, stopping, log, args)
    rng = np.random.default_rng(args.seed + 7919 * dist.rank + step)
    augment = augment or augmentation(args.seed + dist.rank + step)
    real = [c for c in cases if c.name.startswith("real:")]
    t0 = time.perf_counter()
    model.train()
    stop = False
    while step < args.steps and not stop:
        x, y = training_batch(cases, real, config, args, rng, augment, magnify, dist.device)
        loss = loss_at(step)(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % 10 == 0 or step == args.steps:
            log.write(step=step, loss=loss.item())
        out_of_time = time.perf_counter() - t0 > 60.0 * args.minutes
        if dist.main and (step % args.validate_every == 0 or step == args.steps or out_of_time):
            if validation is not None:
                stop = record_validation(model, step, validation, heldout, stopping, log, args)
            stop = stop or out_of_time
            print(f"step {step}: loss {loss.item():.4f}, validation Dice {stopping.best_dice:.3f} best at "
                  f"{stopping.best_step} ({time.perf_counter() - t0:.0f} s)", flush=True)
            save_checkpoint(checkpoint, step, {"model": model}, {"model": optimiser})
        if dist.world > 1:  # every process stops with the main one
            flag = torch.tensor([float(stop)])
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
    info = {"steps": step, "best_step": stopping.best_step, "validation_dice": round(stopping.best_dice, 4),
            "batch": args.batch, "crop": args.crop, "lr": args.lr, "processes": dist.world,
            "seconds": round(time.perf_counter() - t0, 1), "initialised_from": str(args.init) if args.init else None,
            **(log_extra or {})}
    if dist.main:
        save_checkpoint(checkpoint, step, {"model": model}, {"model": optimiser})
        if args.select == "best":
            model.load_state_dict(stopping.best_state)
        else:
            info["best_step"] = step
            info["validation_dice"] = round(stopping.last_dice, 4) if validation is not None else None
        if validation is not None:
            model.config = choose_threshold(model, validation)
        info["threshold"], info["dilation_radius"] = model.config.threshold, model.config.dilation_radius
        info["sha256"] = export_safetensors(model, args.out / "model.safetensors")
        info["config"] = model.config.as_dict()
        (args.out / "training.json").write_text(json.dumps(info, indent=2))
    return info


THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
DILATION_RADII = (0, 1, 2, 3)  # model pixels; 3 is seed paper 001's


def choose_threshold(model, validation):
    """The model's config with the threshold and dilation of the best Dice on the validation
    windows (never on a scored case)."""
    from dataclasses import replace

    from segmenter_validation import choose_post_processing

    threshold, radius, _ = choose_post_processing(model, validation, THRESHOLDS, DILATION_RADII)
    return replace(model.config, threshold=threshold, dilation_radius=radius)


def resume(args, model, optimiser, stopping) -> int:
    """Continue from ``--out``'s checkpoint: the step, and the best weights so far with their Dice."""
    step = load_checkpoint(args.out / "checkpoint.pt", {"model": model}, {"model": optimiser})
    best = args.out / "best.safetensors"
    if best.is_file():
        from safetensors.torch import load_file

        stopping.best_state = load_file(str(best))
        dice, best_step = (args.out / "best.txt").read_text().split()
        stopping.best_dice, stopping.best_step = float(dice), int(float(best_step))
    return step


def training_batch(cases, real, config, args, rng, augment, magnify: float, device):
    """A batch of augmented windows; ``--real-share`` of them from the real cases."""
    images, labels = [], []
    for _ in range(args.batch):
        pool = real if real and rng.random() < args.real_share else cases
        case = pool[rng.integers(len(pool))]
        image, label = sample_window(case, config.window_slices, args.crop, rng, magnify=magnify)
        out = augment({"image": image[None], "label": label[None]})
        images.append(torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32))
        labels.append(torch.as_tensor(np.asarray(out["label"]), dtype=torch.float32))
    return torch.stack(images).to(device), torch.stack(labels).to(device)


def validation_sets(config, args):
    """The held-out synthetic windows, and the left-out real case's (None without ``--exclude``)."""
    from segmenter_validation import VALIDATION_FIRST_SEED, ValidationSet, fixed_windows

    names = [f"synthetic:{s}" for s in range(VALIDATION_FIRST_SEED, VALIDATION_FIRST_SEED + args.validation)]
    synthetic = ValidationSet("synthetic", *fixed_windows(grid_cases(names, config, args.cache), config.window_slices))
    heldout = None
    if args.exclude:
        cases = grid_cases([f"real:{args.exclude}"], config, args.cache)
        heldout = ValidationSet(args.exclude, *fixed_windows(cases, config.window_slices))
    return synthetic, heldout


def record_validation(model, step: int, validation, heldout, stopping, log, args) -> bool:
    """Validate, log the learning curve, keep the best weights (on disk too, for ``--resume``);
    True when early stopping says stop. The left-out real case is logged, never chosen on."""
    from safetensors.torch import save_file
    from segmenter_validation import dice_on

    dice = dice_on(model, validation, THRESHOLDS)
    values = {"step": step, "validation_dice": round(dice, 4)}
    if heldout is not None:
        values[f"heldout_{heldout.name}_dice"] = round(dice_on(model, heldout, THRESHOLDS), 4)
    log.write(**values)
    stop = stopping.update(model, step, dice) and args.select == "best"
    if stopping.best_step == step:
        save_file({k: v.contiguous() for k, v in stopping.best_state.items()}, str(args.out / "best.safetensors"))
        (args.out / "best.txt").write_text(f"{stopping.best_dice} {stopping.best_step}")
    return stop


# what a segmenter's registry entry records of its training
TRAINING_KEYS = ("steps", "best_step", "validation_dice", "threshold", "dilation_radius", "batch", "crop", "processes", "seconds",
                 "synthetic", "real", "excluded", "initialised_from", "rounds", "dice_steps", "focal_steps")


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
