"""Train the Recurrent 3D-DenseUNet (``--tumor r3d-dense-unet``; seed paper 001).

    python training/train_r3d_dense_unet.py --out runs/r3d [--steps 600] [--batch 4] [--crop 64]
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
import time
from pathlib import Path

import torch
from common import add_run_arguments, start
from segmenter_training import install, train_segmenter, training_cases

from LungTumorReconLib.networks.recurrent_dense_unet import RecurrentDenseUNet, RecurrentDenseUNetConfig
from LungTumorReconLib.tumor_datasets import TRAINABLE_REAL_CASES


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(p)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=64, help="in-plane window size in model pixels")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--synthetic", type=int, default=40, help="synthetic chests (two tumours each)")
    p.add_argument("--real", nargs="*", default=list(TRAINABLE_REAL_CASES), choices=TRAINABLE_REAL_CASES)
    p.add_argument("--exclude", choices=TRAINABLE_REAL_CASES, help="leave this real case out")
    p.add_argument("--no-convlstm", action="store_true", help="the ablation: a dense block instead of the ConvLSTM")
    p.add_argument("--cache", type=Path, help="keep the cases on the model grid in this folder between runs")
    p.add_argument("--install", metavar="NAME", help="write the weights and registry entry into Resources/Models")
    args = p.parse_args(argv)

    dist = start(args)
    config = RecurrentDenseUNetConfig(use_convlstm=not args.no_convlstm)
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = RecurrentDenseUNet(config).to(dist.device)
    t0 = time.perf_counter()
    cases = training_cases(config, args.synthetic, tuple(args.real), args.exclude, dist, args.cache, args.seed)
    if dist.main:
        print(f"{len(cases)} training cases per process in {time.perf_counter() - t0:.0f} s", flush=True)
    real = [r for r in args.real if r != args.exclude]
    info = train_segmenter(model, cases, args, dist, {"synthetic": args.synthetic, "real": real,
                                                       "excluded": args.exclude})
    if dist.main:
        if args.install:
            install(args.out / "model.safetensors", args.install, "r3d-dense-unet", config, "r3d-dense-unet.md", info)
        print(f"done: {args.out / 'model.safetensors'} sha256 {info['sha256']}")
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
