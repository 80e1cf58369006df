"""Every method name the front ends accept, which are built, and the defaults.

A method that is not built yet is listed with the issue that brings it; choosing it gives
"not available yet" (exit code 2) instead of a stub.
"""

from __future__ import annotations

from .errors import UnavailableError

LUNG_METHODS = ("snake", "threshold", "resunet", "none")
DEEP_LUNG_METHODS = ("resunet",)  # the organ stage of seed paper 003
TUMOR_METHODS = ("gk", "fcm", "kmeans", "r3d-dense-unet", "lnhg", "resunet", "dense-highres3dnet",
                 "dense-highres3dnet-v1", "dense-highres3dnet-v2", "none")
RECON_METHODS = ("gan", "mc", "mc-fairing", "interp-mc", "none")
DEVICES = ("auto", "cpu", "cuda")
CLUSTER_TUMOR_METHODS = ("gk", "fcm", "kmeans")
DEEP_TUMOR_METHODS = ("r3d-dense-unet", "lnhg", "resunet", "dense-highres3dnet", "dense-highres3dnet-v1",
                      "dense-highres3dnet-v2")
DEEP_TUMOR_MODELS = {  # --tumor method -> shipped registry model
    "r3d-dense-unet": "r3d-dense-unet",
    "dense-highres3dnet": "dense-highres3dnet",  # the ensemble of v1 and v2 (the paper's final model)
    "dense-highres3dnet-v1": "dense-highres3dnet-v1",
    "dense-highres3dnet-v2": "dense-highres3dnet-v2",
    "resunet": "resunet-tumor",  # the tumour stage; its organ stage is --lungs resunet
    "lnhg": "lnhg-generator",  # with the lnhg-detector branch (--weights replaces the generator's)
}

# The best method built so far for each stage, by `make bench` (see README).
DEFAULT_LUNGS = "snake"
DEFAULT_TUMOR = "gk"  # seeded when a tumor seed is given, else the best automatic candidate
DEFAULT_RECON = "interp-mc"  # best on the real cases of make bench (README); the GAN is close on synthetic

_NOT_YET: dict[tuple[str, str], str] = {}  # (stage, method) -> the issue that will build it


def check_available(stage: str, method: str) -> None:
    choices = {"lungs": LUNG_METHODS, "tumor": TUMOR_METHODS, "recon": RECON_METHODS}[stage]
    if method not in choices:
        raise UnavailableError(f"unknown {stage} method {method!r}; choose one of: {', '.join(choices)}")
    if (stage, method) in _NOT_YET:
        raise UnavailableError(f"{stage} method {method!r} is not available yet ({_NOT_YET[(stage, method)]})")


def resolve_device(device: str, needs_torch: bool) -> str:
    """'cpu' or 'cuda'. Only imports torch when a method needs it or CUDA is asked for."""
    if device not in DEVICES:
        raise UnavailableError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "cpu" or (device == "auto" and not needs_torch):
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise UnavailableError("--device cuda needs PyTorch, which is not installed") from None
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UnavailableError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")
    return "cpu"
