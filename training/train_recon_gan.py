"""Train the ResNet → LSTM → 3D GAN reconstruction (``--recon gan``) and its ablations.

    python training/train_recon_gan.py --out runs/gan [--variant gan|with-ct|no-lstm|no-adversarial]
        [--cases 240] [--steps 600] [--batch 4] [--device auto|cpu|cuda] [--resume] [--install]
    torchrun --nproc_per_node 2 training/train_recon_gan.py ...   (several processes / GPUs)

Training pairs: synthetic tumour shapes (solid, part-solid, ground-glass, spiculated; radius
4–25 mm) at fine resolution, cut into thick slices (1.5–10 mm, in-plane 0.5–1 mm) with partial
volume (:mod:`thick_slice_cases`), 70% of them with a chest wall and vessels beside the
tumour in the CT (as real CT has; the benchmark's synthetic cases have none); generator
seeds below 9000 (the benchmark uses 9001+).
No real case is trained on, so every real case in the benchmark is held out.

Losses: Tversky (MONAI; α = β = 0.5 by default, ``--tversky``; seed paper 000's best loss, its
Table VII, where α 0.3 / β 0.7 grew the shapes here) plus a least-squares
adversarial term (weight ``--adversarial``) from a 3D discriminator that sees the shape beside
its condition. ``--install`` writes the weights (safetensors), their SHA-256 and the
configuration into the model registry.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    MetricsLog,
    add_run_arguments,
    export_safetensors,
    install_weights,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    shard,
    start,
    wrap,
)

from LungTumorReconDev.synthetic_thorax import FREE_TUMOR_KINDS
from LungTumorReconDev.thick_slice_cases import synthetic_thick_case
from LungTumorReconLib.networks.slice_lstm_gan import SliceLstmGan, SliceLstmGanConfig, make_discriminator
from LungTumorReconLib.surface.gan import prepare_inputs, truth_on_grid

# The shipped model sees the mask alone: the CT's partial-volume channel scored worse on the
# real cases (dense neighbours that synthetic training cannot cover; make bench, "gan with-ct").
# Each ablation takes one part away from (or, for with-ct, adds one to) the shipped model.
MASK_ONLY = {"slice_channels": 1, "volume_channels": 1}
VARIANTS = {
    "gan": (MASK_ONLY, True),
    "with-ct": ({}, True),
    "no-lstm": ({**MASK_ONLY, "use_lstm": False}, True),
    "no-adversarial": (MASK_ONLY, False),
}
REGISTRY_NAMES = {v: "slice-lstm-gan" if v == "gan" else f"slice-lstm-gan-{v}" for v in VARIANTS}


def make_pair(seed: int, grid_size: int = 64):
    """One training pair: network inputs and the fine truth on the network's grid."""
    rng = np.random.default_rng(seed)
    kind = FREE_TUMOR_KINDS[seed % len(FREE_TUMOR_KINDS)]
    case = synthetic_thick_case(kind, seed, slice_mm=float(rng.choice([1.5, 2.5, 3.0, 5.0, 6.0, 10.0])),
                                in_plane_mm=float(rng.uniform(0.5, 1.0)), radius_mm=float(rng.uniform(4.0, 25.0)),
                                neighbours=bool(rng.random() < 0.7))
    inputs = prepare_inputs(case.mask, case.ct, case.geometry, min_size=grid_size)
    target = truth_on_grid(case.truth, case.truth_geometry, inputs.grid)
    return inputs.slices, inputs.volume, target


def make_pairs(seeds, grid_size: int, cache: Path | None = None) -> list:
    """The pairs for ``seeds``, kept in ``cache`` (an .npz of arrays only) between runs."""
    if cache is not None and cache.is_file():
        with np.load(cache) as f:
            if list(f["seeds"]) == [int(s) for s in seeds]:
                return [(f[f"s{n}"], f[f"v{n}"], f[f"t{n}"]) for n in range(len(seeds))]
    pairs = [make_pair(int(s), grid_size) for s in seeds]
    if cache is not None:
        arrays = {"seeds": np.asarray(seeds)}
        for n, (a, b, c) in enumerate(pairs):
            arrays.update({f"s{n}": a, f"v{n}": b, f"t{n}": c})
        np.savez(cache, **arrays)
    return pairs


def _crop(volume: np.ndarray, target: np.ndarray, size: int, rng: np.random.Generator):
    """A ``size``³ crop centred near the prior's surface (|distance| < 3 voxels), where the
    generator's corrections matter."""
    g = target.shape[0]
    if size >= g:
        return volume, target
    near = np.argwhere(np.abs(volume[0]) < 3.0)
    centre = near[rng.integers(len(near))] if len(near) else np.array([g // 2] * 3)
    lo = np.clip(centre - size // 2, 0, g - size)
    box = tuple(slice(a, a + size) for a in lo)
    return volume[(slice(None),) + box], target[box]


def batch(pairs, indices, config: SliceLstmGanConfig, device: str, crop: int = 0, rng=None):
    chosen = [pairs[i] for i in indices]
    if crop:
        chosen = [(p[0],) + _crop(p[1], p[2], crop, rng) for p in chosen]
    s_max = max(p[0].shape[0] for p in chosen)
    slices = np.zeros((len(chosen), s_max) + chosen[0][0].shape[1:], dtype=np.float32)
    for n, p in enumerate(chosen):
        slices[n, : p[0].shape[0]] = p[0]
    lengths = torch.tensor([p[0].shape[0] for p in chosen])
    volume = np.stack([p[1] for p in chosen])
    target = np.stack([p[2] for p in chosen])[:, None].astype(np.float32)
    slices = slices[:, :, : config.slice_channels]
    volume = volume[:, : config.volume_channels]
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    return to(slices), lengths, to(volume), to(target)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--variant", choices=VARIANTS, default="gan")
    p.add_argument("--cases", type=int, default=240)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--adversarial", type=float, default=0.05)
    p.add_argument("--grid", type=int, default=64, help="smallest grid side (finer grids for larger tumours)")
    p.add_argument("--crop", type=int, default=32, help="train on crops of this size (0: the whole grid)")
    p.add_argument("--tversky", type=float, nargs=2, default=(0.5, 0.5), metavar=("ALPHA", "BETA"),
                   help="Tversky weights of false positives and false negatives")
    p.add_argument("--pairs-cache", type=Path, help="keep the generated training pairs in this file between runs")
    p.add_argument("--install", action="store_true", help="write the weights and registry entry into Resources/Models")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    dist = start(args)
    seed_everything(args.seed + dist.rank)
    overrides, adversarial = VARIANTS[args.variant]
    config = SliceLstmGanConfig(**overrides)
    generator = SliceLstmGan(config).to(dist.device)
    discriminator = make_discriminator(config).to(dist.device)
    g_net, d_net = wrap(generator, dist), wrap(discriminator, dist)
    g_opt = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=args.lr / 4, betas=(0.5, 0.999))
    from monai.losses import TverskyLoss

    tversky = TverskyLoss(sigmoid=True, alpha=args.tversky[0], beta=args.tversky[1])
    checkpoint = args.out / "checkpoint.pt"
    log = MetricsLog(args.out / "metrics.jsonl", enabled=dist.main)
    step = 0
    if args.resume and checkpoint.is_file():
        step = load_checkpoint(checkpoint, {"g": generator, "d": discriminator}, {"g": g_opt, "d": d_opt})

    t0 = time.perf_counter()
    seeds = np.arange(args.cases) + 1000 * args.seed
    cache = args.pairs_cache.with_suffix(f".rank{dist.rank}.npz") if args.pairs_cache else None
    pairs = make_pairs(shard(seeds, dist), args.grid, cache)  # each process makes its own share
    if dist.main:
        print(f"{len(pairs)} training pairs per process in {time.perf_counter() - t0:.0f} s", flush=True)
    order = np.random.default_rng(args.seed + 7919 * dist.rank)
    generator.train()
    discriminator.train()
    while step < args.steps:
        idx = order.choice(len(pairs), size=min(args.batch, len(pairs)), replace=False)
        slices, lengths, volume, target = batch(pairs, idx, config, dist.device, args.crop, order)
        logits = g_net(slices, lengths, volume)
        loss_shape = tversky(logits, target)
        loss_adv = torch.zeros(())
        loss_d = torch.zeros(())
        if adversarial:
            fake = torch.sigmoid(logits)
            d_opt.zero_grad()
            loss_d = 0.5 * ((d_net(target, volume) - 1) ** 2).mean() + 0.5 * (d_net(fake.detach(), volume) ** 2).mean()
            loss_d.backward()
            d_opt.step()
            loss_adv = ((d_net(fake, volume) - 1) ** 2).mean()
        loss = loss_shape + args.adversarial * loss_adv
        g_opt.zero_grad()
        loss.backward()
        g_opt.step()
        step += 1
        if step % 10 == 0 or step == args.steps:
            log.write(step=step, tversky=loss_shape.item(), adversarial=loss_adv.item(), discriminator=loss_d.item())
            if dist.main:
                print(f"step {step}: tversky {float(loss_shape):.4f} adv {float(loss_adv):.3f} "
                      f"d {float(loss_d):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if step % 100 == 0 and dist.main:
            save_checkpoint(checkpoint, step, {"g": generator, "d": discriminator}, {"g": g_opt, "d": d_opt})
    if dist.main:
        save_checkpoint(checkpoint, step, {"g": generator, "d": discriminator}, {"g": g_opt, "d": d_opt})
        digest = export_safetensors(generator, args.out / "model.safetensors")
        info = {"variant": args.variant, "tversky": list(args.tversky), "lr": args.lr, "adversarial_weight": args.adversarial, "config": config.as_dict(), "grid": args.grid, "steps": step, "batch": args.batch,
                "cases": args.cases, "processes": dist.world, "seconds": round(time.perf_counter() - t0, 1),
                "sha256": digest}
        (args.out / "training.json").write_text(json.dumps(info, indent=2))
        if args.install:
            install_weights(args.out / "model.safetensors", REGISTRY_NAMES[args.variant], "slice-lstm-gan", config,
                            "slice-lstm-gan.md", info, ("steps", "batch", "cases", "processes", "seconds"),
                            grid={"min": info["grid"], "max": 128, "voxel": "the CT in-plane spacing"})
        print(f"done: {args.out / 'model.safetensors'} sha256 {digest}")
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
