"""Train the ResNet → LSTM → 3D GAN reconstruction (``--recon gan``) and its ablations.

    python training/train_recon_gan.py --out runs/gan [--variant gan|with-ct|no-lstm|no-adversarial]
        [--cases 240] [--large 0] [--labelled 0] [--real] [--exclude CASE] [--init WEIGHTS] [--steps 600] [--batch 4]
        [--validation 6 --validate-every 100] [--device auto|cpu|cuda] [--resume] [--install [NAME]]
    torchrun --nproc_per_node 2 training/train_recon_gan.py ...   (several processes / GPUs)

Training pairs: synthetic tumour shapes (solid, part-solid, ground-glass, spiculated; radius
4–25 mm) at fine resolution, cut into thick slices (1.5–10 mm, in-plane 0.5–1 mm) with partial
volume (:mod:`thick_slice_cases`), 70% of them with a chest wall and vessels beside the
tumour in the CT (as real CT has; the benchmark's synthetic cases have none); generator
seeds below 8000 (validation uses 8000+, the benchmark 9001+). ``--large N`` adds N masses of
radius 25–50 mm, ``--labelled N`` N shapes labelled on native slices and decimated as the
real masks are; ``--real`` adds the trainable real masks (lung1, LIDC-IDRI-0001's four
readers) cut into thick slices with augmentation (:mod:`recon_gan_data`), less the cases
``--exclude`` names; the IBSI crop is never trained on. ``--real-share`` of each batch is real.
``--init`` starts the generator from given weights (a base trained on synthetic shapes, then
fine-tuned per fold). With ``--validation N`` the learning curve (mean surface distance and
Dice on N held-out synthetic shapes) goes into metrics.jsonl and the best weights by it are
the ones exported, never chosen by a scored case.

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
import recon_gan_data
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


def make_pairs(seeds, grid_size: int, cache: Path | None = None, make=make_pair) -> list:
    """The pairs ``make`` gives for ``seeds``, kept in ``cache`` (an .npz of arrays only) between runs."""
    if cache is not None and cache.is_file():
        with np.load(cache) as f:
            if list(f["seeds"]) == [int(s) for s in seeds]:
                return [(f[f"s{n}"], f[f"v{n}"], f[f"t{n}"]) for n in range(len(seeds))]
    pairs = [make(int(s), grid_size) for s in seeds]
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
    p.add_argument("--cases", type=int, default=240, help="synthetic shapes of radius 4-25 mm")
    p.add_argument("--large", type=int, default=0, help="synthetic masses of radius 25-50 mm")
    p.add_argument("--labelled", type=int, default=0,
                   help="synthetic shapes labelled on native slices and decimated like the real masks")
    p.add_argument("--real", action="store_true", help="also train on the trainable real masks (never the IBSI crop)")
    p.add_argument("--exclude", action="append", default=[], choices=recon_gan_data.REAL_CASES,
                   help="leave this real case out (a fold that scores it); repeatable")
    p.add_argument("--real-pairs", type=int, default=48, help="augmented thick-slice pairs per real case")
    p.add_argument("--real-share", type=float, default=0.35, help="the share of each batch that is real")
    p.add_argument("--init", type=Path, help="start the generator from these weights (safetensors)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--adversarial", type=float, default=0.05)
    p.add_argument("--grid", type=int, default=64, help="smallest grid side (finer grids for larger tumours)")
    p.add_argument("--crop", type=int, default=32, help="train on crops of this size (0: the whole grid)")
    p.add_argument("--tversky", type=float, nargs=2, default=(0.5, 0.5), metavar=("ALPHA", "BETA"),
                   help="Tversky weights of false positives and false negatives")
    p.add_argument("--validation", type=int, default=0, help="held-out synthetic shapes for the learning curve")
    p.add_argument("--validate-every", type=int, default=100)
    p.add_argument("--pairs-cache", type=Path, help="keep the generated synthetic pairs in this file between runs")
    p.add_argument("--install", nargs="?", const="", default=None, metavar="NAME",
                   help="write the weights and registry entry into Resources/Models (default name: the variant's)")
    return p


def training_pairs(args, dist) -> tuple[list, list, list[str]]:
    """Synthetic pairs (small shapes and large masses), real pairs, and the real cases used."""
    seeds = np.arange(args.cases) + 1000 * args.seed
    cache = args.pairs_cache.with_suffix(f".rank{dist.rank}.npz") if args.pairs_cache else None
    pairs = make_pairs(shard(seeds, dist), args.grid, cache)  # each process makes its own share
    if args.large:
        large = np.arange(args.large) + 5000 + 100 * args.seed  # below the validation's 8000
        cache = args.pairs_cache.with_suffix(f".large.rank{dist.rank}.npz") if args.pairs_cache else None
        pairs += make_pairs(shard(large, dist), args.grid, cache, recon_gan_data.large_mass_pair)
    if args.labelled:
        labelled = np.arange(args.labelled) + 6000 + 100 * args.seed  # below the validation's 8000
        cache = args.pairs_cache.with_suffix(f".labelled.rank{dist.rank}.npz") if args.pairs_cache else None
        pairs += make_pairs(shard(labelled, dist), args.grid, cache, recon_gan_data.labelled_pair)
    real_pairs, used = [], []
    if args.real:
        masks = recon_gan_data.read_real_masks(tuple(args.exclude))
        used = sorted({m.case for m in masks})
        for case in used:
            readers = [m for m in masks if m.case == case]
            seeds = shard(np.arange(args.real_pairs) + 100000 * (1 + args.seed), dist)
            real_pairs += [recon_gan_data.real_pair(readers[n % len(readers)], int(s), args.grid)
                           for n, s in enumerate(seeds)]
    return pairs, real_pairs, used


def keep_channels(pairs: list, config: SliceLstmGanConfig) -> list:
    """The pairs with only the channels the model reads (half the memory for a mask-only model)."""
    return [(s[:, : config.slice_channels].copy(), v[: config.volume_channels].copy(), t) for s, v, t in pairs]


def _draw(pairs: list, real_pairs: list, size: int, share: float, rng: np.random.Generator) -> list:
    """A batch's pairs: each real with probability ``share`` (when there are real pairs)."""
    n_real = int(rng.binomial(size, share)) if real_pairs else 0
    out = [pairs[i] for i in rng.choice(len(pairs), size=min(size - n_real, len(pairs)), replace=False)]
    return out + [real_pairs[i] for i in rng.choice(len(real_pairs), size=n_real, replace=False)]


def _validation_state(args, generator, config, dist, best: dict, step: int, val_pairs: list, log) -> dict:
    """Validate, log the learning curve, keep the best weights (by validation MSD) in best.safetensors."""
    scores = recon_gan_data.validate(generator, val_pairs, config, dist.device)
    log.write(step=step, **scores)
    if step == 0 or scores["val_msd"] < best.get("val_msd", np.inf):
        best = {"step": step, **scores}
        export_safetensors(generator, args.out / "best.safetensors")
        (args.out / "best.json").write_text(json.dumps(best))
    print(f"step {step}: validation msd {scores['val_msd']:.4f} voxels, dice {scores['val_dice']:.4f} "
          f"(prior {scores['val_prior_msd']:.4f}; best at step {best['step']})", flush=True)
    return best


def _finish(args, generator, config, dist, step: int, t0: float, used: list[str], best: dict) -> None:
    """Export the best weights (or the last, without validation), training.json, and install."""
    if best:
        from safetensors.torch import load_file

        generator.load_state_dict(load_file(str(args.out / "best.safetensors")))
    digest = export_safetensors(generator, args.out / "model.safetensors")
    info = {"variant": args.variant, "tversky": list(args.tversky), "lr": args.lr,
            "adversarial_weight": args.adversarial, "config": config.as_dict(), "grid": args.grid, "steps": step,
            "batch": args.batch, "cases": args.cases, "large": args.large, "labelled": args.labelled, "real": used,
            "excluded": args.exclude,
            "real_pairs": args.real_pairs if used else 0, "init": str(args.init) if args.init else None,
            "best_step": best.get("step"), "validation": {k: v for k, v in best.items() if k != "step"},
            "processes": dist.world, "seconds": round(time.perf_counter() - t0, 1), "sha256": digest}
    (args.out / "training.json").write_text(json.dumps(info, indent=2))
    if args.install is not None:
        install_weights(args.out / "model.safetensors", args.install or REGISTRY_NAMES[args.variant],
                        "slice-lstm-gan", config, "slice-lstm-gan.md", info,
                        ("steps", "batch", "cases", "large", "labelled", "real", "excluded", "real_pairs", "init",
                         "best_step", "validation", "processes", "seconds"),
                        grid={"min": info["grid"], "max": 128, "voxel": "the CT in-plane spacing"})
    print(f"done: {args.out / 'model.safetensors'} sha256 {digest}")


def _train_step(nets, opts, losses, args, config, dist, chosen, rng) -> tuple[float, float, float]:
    """One generator (and discriminator) update on ``chosen``; the three losses."""
    g_net, d_net, adversarial = nets
    g_opt, d_opt = opts
    slices, lengths, volume, target = batch(chosen, range(len(chosen)), config, dist.device, args.crop, rng)
    logits = g_net(slices, lengths, volume)
    loss_shape = losses(logits, target)
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
    return loss_shape.item(), loss_adv.item(), loss_d.item()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    dist = start(args)
    seed_everything(args.seed + dist.rank)
    overrides, adversarial = VARIANTS[args.variant]
    config = SliceLstmGanConfig(**overrides)
    generator = SliceLstmGan(config).to(dist.device)
    if args.init:
        from safetensors.torch import load_file

        generator.load_state_dict(load_file(str(args.init)))
    discriminator = make_discriminator(config).to(dist.device)
    nets = (wrap(generator, dist), wrap(discriminator, dist), adversarial)
    opts = (torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999)),
            torch.optim.Adam(discriminator.parameters(), lr=args.lr / 4, betas=(0.5, 0.999)))
    from monai.losses import TverskyLoss

    tversky = TverskyLoss(sigmoid=True, alpha=args.tversky[0], beta=args.tversky[1])
    checkpoint = args.out / "checkpoint.pt"
    modules, optimisers = {"g": generator, "d": discriminator}, {"g": opts[0], "d": opts[1]}
    log = MetricsLog(args.out / "metrics.jsonl", enabled=dist.main)
    step, best, elapsed = 0, {}, args.out / "elapsed.json"
    if args.resume and checkpoint.is_file():
        step = load_checkpoint(checkpoint, modules, optimisers)
        best = json.loads((args.out / "best.json").read_text()) if (args.out / "best.json").is_file() else {}
    # the training time over every resumed run: what came before plus this run's
    t0 = time.perf_counter() - (json.loads(elapsed.read_text())["seconds"] if step and elapsed.is_file() else 0.0)
    if step >= args.steps:  # done already (e.g. resumed only to --install): no data to make
        pairs, real_pairs, used, val_pairs = [], [], json.loads((args.out / "training.json").read_text())["real"], []
    else:
        pairs, real_pairs, used = training_pairs(args, dist)
        pairs, real_pairs = keep_channels(pairs, config), keep_channels(real_pairs, config)
        val_pairs = recon_gan_data.validation_pairs(args.validation, args.grid) if args.validation and dist.main else []
    if dist.main:
        print(f"{len(pairs)} synthetic and {len(real_pairs)} real pairs per process (real: {used or 'none'}), "
              f"{len(val_pairs)} validation, in {time.perf_counter() - t0:.0f} s", flush=True)
    if val_pairs and not best:
        best = _validation_state(args, generator, config, dist, best, step, val_pairs, log)
    order = np.random.default_rng(args.seed + 7919 * dist.rank + 104729 * step)  # a resumed run draws anew
    generator.train()
    discriminator.train()
    while step < args.steps:
        chosen = _draw(pairs, real_pairs, args.batch, args.real_share, order)
        loss_shape, loss_adv, loss_d = _train_step(nets, opts, tversky, args, config, dist, chosen, order)
        step += 1
        if step % 10 == 0 or step == args.steps:
            log.write(step=step, tversky=loss_shape, adversarial=loss_adv, discriminator=loss_d)
            if dist.main:
                print(f"step {step}: tversky {loss_shape:.4f} adv {loss_adv:.3f} d {loss_d:.3f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if val_pairs and (step % args.validate_every == 0 or step == args.steps):
            best = _validation_state(args, generator, config, dist, best, step, val_pairs, log)
        if step % 50 == 0 and dist.main:
            save_checkpoint(checkpoint, step, modules, optimisers)
            elapsed.write_text(json.dumps({"step": step, "seconds": round(time.perf_counter() - t0, 1)}))
    if dist.main:
        save_checkpoint(checkpoint, step, modules, optimisers)
        elapsed.write_text(json.dumps({"step": step, "seconds": round(time.perf_counter() - t0, 1)}))
        _finish(args, generator, config, dist, step, t0, used, best)
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
