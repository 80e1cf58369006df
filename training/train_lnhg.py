"""Train LNHG's two branches (``--tumor lnhg``; seed paper 002).

    python training/train_lnhg.py --branch generator --out runs/lnhg-g [--steps 500] [--no-adversarial]
        [--no-perceptual] [--perceptual-weights vgg19.safetensors] [--install NAME]
    python training/train_lnhg.py --branch detector --out runs/lnhg-d [--steps 600] [--install NAME]

Cases: the shared segmenter cases on the 1.25 mm grid (:mod:`segmenter_training`): synthetic
chests and, with ``--real``, the real cases allowed for training (the shipped branches use
synthetic chests only, so every real case is held out).

- **generator** (WGAN-GP): windows of 3 slices × ``--crop``², 70% near a tumour, the paper's
  augmentation (flip, rotation, translation) as MONAI transforms; the target is the nodule
  image (the window's image inside the tumour, 0 elsewhere), made after augmentation.
  Critic loss ``D(fake) − D(real) + 10·GP``; generator loss ``MSE + perceptual + 0.1 ×
  (−D(fake))``; Adam, lr 10⁻⁴, betas (0.5, 0.9), both networks (the paper's).
  - The perceptual term compares features of the generated and true nodule images, slice by
    slice. The paper's VGG-19 (ImageNet) cannot be downloaded here: ``--perceptual-weights``
    takes torchvision ``vgg19().features`` weights as safetensors; without it, the features
    are the first two encoder blocks of our shipped ResUNet tumour stage (``resunet-tumor``),
    a network trained on our own data, frozen.
  - One critic update per generator update on 2 CPU cores (the authors' default is 5).
- **detector** (Faster R-CNN, GIoU box loss): one slice and its neighbours as channels,
  ``--crop``² windows around a tumour slice (70%) or anywhere; the boxes of the tumour's
  connected components on that slice; random flips; Adam, lr 10⁻⁴, weight decay 5·10⁻⁴
  (the authors').
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
    start,
)
from scipy import ndimage as ndi
from segmenter_training import TRAINING_KEYS, add_segmenter_arguments, cases_for_run, sample_window

from LungTumorReconLib.networks.lnhg_wgan import (
    LnhgGeneratorConfig,
    NoduleGenerator,
    WassersteinCritic,
    gradient_penalty,
)
from LungTumorReconLib.networks.nodule_detector import NoduleDetectorConfig, build_nodule_detector
from LungTumorReconLib.tumor.lnhg import three_slice_images

GENERATOR_WIDTHS = (8, 16, 32, 64)  # the paper's 32-64-128-256 are too slow for 2 CPU cores
LAMBDA_MSE, LAMBDA_PERCEPTUAL, LAMBDA_ADVERSARIAL, LAMBDA_GP = 1.0, 1.0, 0.1, 10.0  # the paper's


def augmentation(seed: int):
    """The authors' list (horizontal flip, rotation, translation) as MONAI transforms."""
    from monai.transforms import Compose, RandAffined, RandFlipd

    keys = ("image", "label")
    transform = Compose([
        RandFlipd(keys, spatial_axis=2, prob=0.5),
        RandAffined(keys, rotate_range=(np.deg2rad(30), 0, 0), translate_range=(0, 6, 6), prob=0.5,
                    mode=("bilinear", "nearest"), padding_mode="border"),
    ])
    transform.set_random_state(seed)
    return transform


class Perceptual(torch.nn.Module):
    """Frozen features of 2D slices: VGG-19's first 16 layers from ``weights``, or the first two
    encoder blocks of the shipped ResUNet tumour stage."""

    def __init__(self, weights: Path | None, encoder_model: str = "resunet-tumor-synthetic"):
        super().__init__()
        if weights is not None:
            from safetensors.torch import load_file
            from torchvision.models import vgg19

            features = vgg19(weights=None).features
            state = {k.removeprefix("features."): v for k, v in load_file(str(weights)).items()}
            features.load_state_dict(state)
            self.net, self.channels = features[:16], 3
        else:
            from LungTumorReconLib.networks.registry import load_model

            resunet = load_model(encoder_model)  # trained on synthetic chests only: no real case leaks in
            self.net = torch.nn.Sequential(resunet.encoders[0], resunet.encoders[1])
            self.channels = 1
        self.net.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, s, h, w = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(b * s, c, h, w)
        return self.net(slices.expand(-1, self.channels, -1, -1))


def _windows(cases, rng, augment, args, slices: int):
    images, labels = [], []
    for _ in range(args.batch):
        image, label = sample_window(cases[rng.integers(len(cases))], slices, args.crop, rng)
        out = augment({"image": image[None], "label": label[None]})
        images.append(torch.as_tensor(np.asarray(out["image"]), dtype=torch.float32))
        labels.append(torch.as_tensor(np.asarray(out["label"]), dtype=torch.float32))
    return torch.stack(images), torch.stack(labels)


def train_generator(args, dist, cases) -> dict:
    config = LnhgGeneratorConfig(widths=GENERATOR_WIDTHS, crop=args.crop, slice_mm=args.slice_mm)
    torch.manual_seed(args.seed)
    generator, critic = NoduleGenerator(config).to(dist.device), WassersteinCritic(config).to(dist.device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=args.lr, betas=(0.5, 0.9))
    perceptual = None
    if not args.no_perceptual:
        perceptual = Perceptual(args.perceptual_weights, args.perceptual_model).to(dist.device)
    checkpoint = args.out / "checkpoint.pt"
    step = 0
    if args.resume and checkpoint.is_file():
        step = load_checkpoint(checkpoint, {"generator": generator, "critic": critic}, {"generator": opt_g, "critic": opt_d})
    rng = np.random.default_rng(args.seed + step)
    augment = augmentation(args.seed + step)
    log = MetricsLog(args.out / "metrics.jsonl", enabled=dist.main)
    t0 = time.perf_counter()
    while step < args.steps:
        image, label = _windows(cases, rng, augment, args, config.window_slices)
        x, real = image.to(dist.device), (image * label).to(dist.device)  # the nodule image
        fake = generator(x)
        loss_d = torch.zeros(())
        if not args.no_adversarial:
            loss_d = critic(fake.detach()).mean() - critic(real).mean() + gradient_penalty(critic, real, fake.detach(), LAMBDA_GP)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        mse = torch.nn.functional.mse_loss(fake, real)
        loss_g = LAMBDA_MSE * mse
        if perceptual is not None:
            loss_g = loss_g + LAMBDA_PERCEPTUAL * torch.nn.functional.mse_loss(perceptual(fake), perceptual(real))
        if not args.no_adversarial:
            loss_g = loss_g - LAMBDA_ADVERSARIAL * critic(fake).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        step += 1
        if step % 10 == 0 or step == args.steps:
            log.write(step=step, loss_g=loss_g.item(), loss_d=loss_d.item(), mse=mse.item())
            print(f"step {step}: generator {loss_g.item():.4f} (mse {mse.item():.4f}) critic {loss_d.item():.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if step % 100 == 0:
            save_checkpoint(checkpoint, step, {"generator": generator, "critic": critic}, {"generator": opt_g, "critic": opt_d})
    save_checkpoint(checkpoint, step, {"generator": generator, "critic": critic}, {"generator": opt_g, "critic": opt_d})
    return {"model": generator, "config": config, "steps": step, "seconds": round(time.perf_counter() - t0, 1),
            "adversarial": not args.no_adversarial,
            "perceptual": "none" if args.no_perceptual else
            ("vgg19" if args.perceptual_weights else f"{args.perceptual_model} encoder")}


def _boxes(label_slice: np.ndarray) -> np.ndarray:
    boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in ndi.find_objects(ndi.label(label_slice)[0]) if s]
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def train_detector(args, dist, cases) -> dict:
    config = NoduleDetectorConfig(slice_mm=args.slice_mm)
    torch.manual_seed(args.seed)
    detector = build_nodule_detector(config).to(dist.device)
    optimiser = torch.optim.Adam(detector.parameters(), lr=args.lr, weight_decay=5e-4)
    checkpoint = args.out / "checkpoint.pt"
    step = 0
    if args.resume and checkpoint.is_file():
        step = load_checkpoint(checkpoint, {"detector": detector}, {"detector": optimiser})
    rng = np.random.default_rng(args.seed + step)
    log = MetricsLog(args.out / "metrics.jsonl", enabled=dist.main)
    t0 = time.perf_counter()
    detector.train()
    while step < args.steps:
        images, targets = [], []
        for _ in range(args.batch):
            image, label = sample_window(cases[rng.integers(len(cases))], 3, args.crop, rng)
            stack, truth = three_slice_images(image)[1], label[1] > 0.5  # the middle slice and its neighbours
            for axis in (1, 2):
                if rng.random() < 0.5:
                    stack, truth = np.flip(stack, axis), np.flip(truth, axis - 1)
            boxes = _boxes(truth)
            images.append(torch.from_numpy(np.ascontiguousarray(stack)).to(dist.device))
            targets.append({"boxes": torch.from_numpy(boxes).to(dist.device),
                            "labels": torch.ones(len(boxes), dtype=torch.int64, device=dist.device)})
        losses = detector(images, targets)
        loss = sum(losses.values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % 10 == 0 or step == args.steps:
            log.write(step=step, loss=loss.item(), **{k: v.item() for k, v in losses.items()})
            print(f"step {step}: loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if step % 100 == 0:
            save_checkpoint(checkpoint, step, {"detector": detector}, {"detector": optimiser})
    save_checkpoint(checkpoint, step, {"detector": detector}, {"detector": optimiser})
    return {"model": detector, "config": config, "steps": step, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--branch", choices=("generator", "detector"), required=True)
    p.add_argument("--steps", type=int, default=500)
    add_segmenter_arguments(p, batch=4, lr=1e-4)
    p.add_argument("--no-adversarial", action="store_true", help="ablation: no critic, no adversarial term")
    p.add_argument("--no-perceptual", action="store_true", help="ablation: no perceptual term")
    p.add_argument("--perceptual-weights", type=Path, help="torchvision vgg19().features weights (safetensors)")
    p.add_argument("--perceptual-model", default="resunet-tumor-synthetic",
                   help="the registry ResUNet whose first encoder blocks give the perceptual features (its training "
                        "must not include a case the generator is scored on)")
    args = p.parse_args(argv)
    dist = start(args)
    if dist.world > 1:
        raise SystemExit("error: train_lnhg.py runs in one process")
    seed_everything(args.seed)
    grid = LnhgGeneratorConfig(slice_mm=args.slice_mm)  # both branches' grid: 1.25 mm, slice_mm, HU -1000..400
    cases, record = cases_for_run(grid, args, dist)
    trained = train_generator(args, dist, cases) if args.branch == "generator" else train_detector(args, dist, cases)
    model, config = trained.pop("model"), trained.pop("config")
    info = {"batch": args.batch, "crop": args.crop, "lr": args.lr, "processes": 1, **record, **trained}
    info["sha256"] = export_safetensors(model, args.out / "model.safetensors")
    info["config"] = config.as_dict()
    (args.out / "training.json").write_text(json.dumps(info, indent=2))
    if args.install:
        architecture = "lnhg-generator" if args.branch == "generator" else "nodule-detector"
        install_weights(args.out / "model.safetensors", args.install, architecture, config, "lnhg.md", info,
                        (*TRAINING_KEYS, "adversarial", "perceptual"))
    print(f"done: {args.out / 'model.safetensors'} sha256 {info['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
