"""Train DenseHighRes3DNet v1 or v2 (``--tumor dense-highres3dnet[-v1|-v2]``; seed paper 004).

    python training/train_dense_highres3dnet.py --out runs/dhr1 --version 1 [--rounds 2]
        [--dice-steps 250] [--focal-steps 100] [--batch 2] [--crop 64] [--synthetic 40]
        [--exclude lung1|LIDC-IDRI-0001] [--plain-sampling] [--install NAME]
    torchrun --nproc_per_node 2 training/train_dense_highres3dnet.py ...   (several processes / GPUs)

The paper's schedule in "rounds": Dice loss (V-Net's, MONAI ``DiceLoss``) for ``--dice-steps``,
then focal loss (α 0.75, γ 2; MONAI ``FocalLoss``) for ``--focal-steps``; the paper trained
20k + 10k iterations per round on a V100, this runs a few hundred on a CPU. Augmentation as
the paper: random crops (the window sampler), elastic deformation and scaling 0.9–1.1
(MONAI ``Rand3DElasticd``); Adam, lr 3·10⁻⁴, L2 weight decay 2·10⁻⁴ (the paper's).
``--plain-sampling`` trains the ablation (strided and transposed convolutions instead of
DDC and DUC). The MSD 2D patches are not used: the network is 3D.
"""

from __future__ import annotations

import argparse

import torch
from common import add_run_arguments, start
from segmenter_training import add_segmenter_arguments, cases_for_run, finish, train_segmenter

from LungTumorReconLib.networks.dense_highres3dnet import DenseHighRes3DNet, DenseHighRes3DNetConfig


def augmentation(seed: int):
    """Seed paper 004's: elastic deformation and scaling 0.9–1.1 (random crops: the sampler)."""
    from monai.transforms import Rand3DElasticd

    transform = Rand3DElasticd(("image", "label"), sigma_range=(5, 8), magnitude_range=(20, 60), prob=0.5,
                               scale_range=(0.1, 0.1, 0.1), mode=("bilinear", "nearest"), padding_mode="border")
    transform.set_random_state(seed)
    return transform


def loss_schedule(dice_steps: int, focal_steps: int):
    """Rounds of Dice loss then focal loss (α 0.75, γ 2), as the paper."""
    from monai.losses import DiceLoss, FocalLoss

    dice, focal = DiceLoss(sigmoid=True), FocalLoss(alpha=0.75, gamma=2.0, use_softmax=False)

    def loss_at(step: int):
        return dice if step % (dice_steps + focal_steps) < dice_steps else focal

    return loss_at


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--version", type=int, choices=(1, 2), default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dice-steps", type=int, default=250)
    p.add_argument("--focal-steps", type=int, default=100)
    add_segmenter_arguments(p, batch=2, lr=3e-4)
    p.add_argument("--weight-decay", type=float, default=2e-4)
    p.add_argument("--plain-sampling", action="store_true", help="the ablation: no DDC / DUC")
    args = p.parse_args(argv)
    args.steps = args.rounds * (args.dice_steps + args.focal_steps)

    dist = start(args)
    config = DenseHighRes3DNetConfig(version=args.version, use_dense_sampling=not args.plain_sampling,
                                     slice_mm=args.slice_mm)
    torch.manual_seed(args.seed)
    model = DenseHighRes3DNet(config).to(dist.device)
    cases, record = cases_for_run(config, args, dist)
    info = train_segmenter(
        model, cases, args, dist,
        {**record, "rounds": args.rounds, "dice_steps": args.dice_steps, "focal_steps": args.focal_steps},
        loss_at=loss_schedule(args.dice_steps, args.focal_steps), augment=augmentation(args.seed + dist.rank),
        weight_decay=args.weight_decay)
    return finish(args, dist, info, "dense-highres3dnet", model.config, "dense-highres3dnet.md")


if __name__ == "__main__":
    raise SystemExit(main())
