"""Train the Recurrent 3D-DenseUNet (``--tumor r3d-dense-unet``; seed paper 001).

    python training/train_r3d_dense_unet.py --out runs/r3d [--steps 1000] [--batch 4] [--crop 64]
        [--synthetic 40] [--exclude lung1|LIDC-IDRI-0001] [--no-convlstm] [--install NAME]
    torchrun --nproc_per_node 2 training/train_r3d_dense_unet.py ...   (several processes / GPUs)

Windows of 8 slices × ``--crop``² pixels at the model's in-plane pixel size, 70% of them
centred near a tumour; the paper's augmentation (:func:`segmenter_training.augmentation`);
MONAI's Dice + cross-entropy loss (the paper's cross-entropy alone trained slower here);
Adam. ``--exclude`` leaves one real case out (leave-one-out evaluation). The MSD 2D patches
are not used: this model needs 8 consecutive slices, which 2D patches do not have.
"""

from __future__ import annotations

import argparse

import torch
from common import add_run_arguments, start
from segmenter_training import add_segmenter_arguments, cases_for_run, finish, train_segmenter

from LungTumorReconLib.networks.recurrent_dense_unet import RecurrentDenseUNet, RecurrentDenseUNetConfig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--steps", type=int, default=1000)
    add_segmenter_arguments(p, batch=4, lr=1e-3)
    p.add_argument("--no-convlstm", action="store_true", help="the ablation: a dense block instead of the ConvLSTM")
    args = p.parse_args(argv)

    dist = start(args)
    config = RecurrentDenseUNetConfig(use_convlstm=not args.no_convlstm, slice_mm=args.slice_mm)
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = RecurrentDenseUNet(config).to(dist.device)
    cases, record = cases_for_run(config, args, dist)
    info = train_segmenter(model, cases, args, dist, record)
    return finish(args, dist, info, "r3d-dense-unet", model.config, "r3d-dense-unet.md")


if __name__ == "__main__":
    raise SystemExit(main())
