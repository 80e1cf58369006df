"""Train seed paper 003's two ResUNets: the organ stage (``--lungs resunet``) and the tumour
stage (``--tumor resunet``).

    python training/train_resunet.py --stage lungs --out runs/resunet-lungs [--steps 800] [--install resunet-lungs]
    python training/train_resunet.py --stage tumor --out runs/resunet-tumor [--exclude lung1] [--install NAME]
    torchrun --nproc_per_node 2 training/train_resunet.py ...   (several processes / GPUs)

Both stages: one-slice windows (the network is 2D), HU window then histogram equalisation
(the training set's cumulative histogram, fixed in the model's configuration) then 0..1;
MONAI's Dice loss (the paper's loss); the paper's augmentation as MONAI transforms: random
rotation, translation, noise and horizontal flip (cropping is the window sampler); Adam.

- **lungs** (2.5 mm pixels, 128² windows): synthetic thoraxes (generator seeds from
  ``FIRST_LUNG_SEED``, never the bench's) with their exact lung truth, and cip_chest64's lung
  labels. Two channels, the lung on the image's low-i side and the other; no flip, which
  would swap them.
- **tumor** (1.25 mm pixels, 96² windows): the shared segmenter cases
  (:mod:`segmenter_training`): synthetic chests and the real cases allowed for training,
  less ``--exclude``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from common import DATA, add_run_arguments, shard, start
from segmenter_training import GridCase, add_segmenter_arguments, cases_for_run, finish, train_segmenter

from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.networks.resunet import ResUNet, ResUNetConfig, equalisation_curve, intensity_histogram
from LungTumorReconLib.tumor.deep import model_grid_image, to_model_grid

FIRST_LUNG_SEED = 500  # bench_lungs uses thorax seeds 1-5, the tumour benches 11-37 and 9001+
LUNG_CONFIG = ResUNetConfig(out_channels=2, pixel_mm=2.5)
TUMOR_CONFIG = ResUNetConfig()


def _lung_grid_case(name: str, hu: np.ndarray, spacing_kji, lungs: list[np.ndarray], config) -> GridCase:
    """Label 1 = the lung whose centre lies at the lower i, 2 = the other (model grid)."""
    image = model_grid_image(hu, spacing_kji, config)[0, 0].numpy()
    label = np.zeros(image.shape, dtype=np.uint8)
    order = sorted(lungs, key=lambda m: np.argwhere(m)[:, 2].mean() if m.any() else np.inf)
    for code, mask in enumerate(order, start=1):
        label[to_model_grid(mask.astype(np.float32), spacing_kji, config.pixel_mm)[0, 0].numpy() > 0.5] = code
    return GridCase(name, image, label)


def lung_cases(config, synthetic: int, dist, cache: Path | None, seed: int = 0) -> list[GridCase]:
    from LungTumorReconDev.synthetic_thorax import TUMOR_KINDS, make_thorax

    first = FIRST_LUNG_SEED + 1000 * seed
    names = [f"synthetic:{s}" for s in range(first, first + synthetic)] + ["real:cip_chest64"]
    out = []
    for name in shard(np.array(names, dtype=object), dist):
        path = cache / f"lungs_{name.replace(':', '_')}_{config.pixel_mm}mm.npz" if cache else None
        if path is not None and path.is_file():
            data = np.load(path)
            out.append(GridCase(name, data["image"], data["label"]))
            continue
        if name == "real:cip_chest64":
            ct = read_ct(DATA / "cip_chest64" / "ct-64.nrrd")
            lm = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "cip_chest64" / "lm-64.nrrd"))) & 255
            hu, spacing, lungs = ct.array, ct.geometry.spacing[::-1], [np.isin(lm, [9, 10, 11]), np.isin(lm, [12, 13, 14])]
        else:
            s = int(name.partition(":")[2])
            rng = np.random.default_rng(s)
            pixel, slice_mm = float(rng.uniform(0.6, 1.2)), float(rng.choice([2.5, 3.0, 5.0]))
            n = int(340 / pixel) // 8 * 8
            kinds = tuple(str(k) for k in rng.choice(TUMOR_KINDS, size=2, replace=False))
            thorax = make_thorax(size=(n, n, int(round(300 / slice_mm))), spacing=(pixel, pixel, slice_mm),
                                 tumors=kinds, seed=s, lungs_touch=bool(rng.random() < 0.3))
            hu, spacing = thorax.ct, thorax.geometry.spacing[::-1]
            lungs = [thorax.labels["right lung"], thorax.labels["left lung"]]
        grid = _lung_grid_case(name, hu, tuple(float(v) for v in spacing), lungs, config)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, image=grid.image, label=grid.label)
        out.append(grid)
    return out


def histogram_curve(cases: list[GridCase], dist) -> tuple[float, ...]:
    """The equalisation curve of all processes' training images (the same in every process)."""
    counts = sum(intensity_histogram(c.image) for c in cases)
    if dist.world > 1:
        t = torch.as_tensor(counts, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        counts = t.numpy()
    return equalisation_curve(counts)


def augmentation(seed: int, flip: bool):
    """Seed paper 003's augmentations (§III-B.3) as MONAI transforms on one-slice windows."""
    from monai.transforms import Compose, RandAffined, RandFlipd, RandGaussianNoised, RandRotated

    keys = ("image", "label")
    transforms = [
        RandRotated(keys, range_x=np.deg2rad(15), prob=0.5, mode=("bilinear", "nearest"), padding_mode="border"),
        RandAffined(keys, translate_range=(0, 8, 8), prob=0.5, mode=("bilinear", "nearest"), padding_mode="border"),
        RandGaussianNoised("image", std=0.02, prob=0.3),
    ]
    if flip:
        transforms.append(RandFlipd(keys, spatial_axis=2, prob=0.5))
    transform = Compose(transforms)
    transform.set_random_state(seed)
    return transform


def dice_loss(channels: int):
    """MONAI's Dice loss over the batch; label codes 1..channels become one channel each."""
    from monai.losses import DiceLoss

    dice = DiceLoss(sigmoid=True, batch=True)

    def loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        target = label if channels == 1 else torch.cat([(label == c).float() for c in range(1, channels + 1)], dim=1)
        return dice(logits, target)
    return loss


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--stage", choices=("lungs", "tumor"), required=True)
    p.add_argument("--steps", type=int, default=1200)
    add_segmenter_arguments(p, batch=8, lr=1e-3)
    args = p.parse_args(argv)
    if args.crop == 64:  # the shared default: this model's windows are larger (2D is cheap)
        args.crop = 128 if args.stage == "lungs" else 96
    if args.stage == "lungs":
        args.validation = 0  # the tumour validation chests say nothing of the lungs: the last weights

    dist = start(args)
    config = LUNG_CONFIG if args.stage == "lungs" else replace(TUMOR_CONFIG, slice_mm=args.slice_mm)
    if args.stage == "lungs":
        cases = lung_cases(config, args.synthetic, dist, args.cache, args.seed)
        record = {"synthetic": args.synthetic, "real": ["cip_chest64"], "excluded": None}
    else:
        cases, record = cases_for_run(config, args, dist)
    base = args.init.parent / "training.json" if args.init else None
    if base is not None and base.is_file():  # a fine-tune keeps the curve its starting weights learnt with
        config = replace(config, equalisation=tuple(json.loads(base.read_text())["config"]["equalisation"]))
    else:
        config = replace(config, equalisation=histogram_curve(cases, dist))
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = ResUNet(config).to(dist.device)
    loss = dice_loss(config.out_channels)
    info = train_segmenter(model, cases, args, dist, record, loss_at=lambda step: loss,
                           augment=augmentation(args.seed + dist.rank, flip=args.stage == "tumor"),
                           magnify=0.0 if args.stage == "lungs" else 0.3)
    return finish(args, dist, info, "resunet", model.config, "resunet.md")


if __name__ == "__main__":
    raise SystemExit(main())
