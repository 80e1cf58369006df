"""Every method name the front ends accept, which are built, and the defaults.

A method that is not built yet is listed with the issue that brings it; choosing it gives
"not available yet" (exit code 2) instead of a stub.
"""

from __future__ import annotations

from LungTumorReconLib.errors import UnavailableError

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
    # v1 trained on the real-like chests and the real cases; -v1 and -v2 are issue 20's (synthetic only)
    "dense-highres3dnet": "dense-highres3dnet",
    "dense-highres3dnet-v1": "dense-highres3dnet-v1",
    "dense-highres3dnet-v2": "dense-highres3dnet-v2",
    "resunet": "resunet-tumor",  # the tumour stage; its organ stage is --lungs resunet
    "lnhg": "lnhg-generator",  # with the lnhg-detector branch (--weights replaces the generator's)
}

# The best method built so far for each stage, by `make bench` (docs/results.md).
DEFAULT_LUNGS = "snake"
DEFAULT_TUMOR = "gk"  # seeded when a tumor seed is given, else the best automatic candidate
DEFAULT_RECON = "interp-mc"  # best on the real cases of make bench (README); the GAN is close on synthetic
DEFAULTS = {"lungs": DEFAULT_LUNGS, "tumor": DEFAULT_TUMOR, "recon": DEFAULT_RECON, "device": "auto"}

# Each method id and the words a panel shows for it, as its paper names it (one table for every
# front end; the ids stay the values and the command line's words).
METHOD_LABELS = {
    "lungs": {"snake": "Viterbi point snake", "threshold": "Threshold and connected regions",
              "resunet": "ResUNet organ stage (network)", "none": "None"},
    "tumor": {"gk": "Gustafson–Kessel fuzzy clustering", "fcm": "Fuzzy C-means", "kmeans": "K-means",
              "r3d-dense-unet": "Recurrent 3D-DenseUNet (network)",
              "lnhg": "LNHG: nodule generation + detection (network)", "resunet": "ResUNet (network)",
              "dense-highres3dnet": "DenseHighRes3DNet (network)",
              "dense-highres3dnet-v1": "DenseHighRes3DNet v1, synthetic only (network)",
              "dense-highres3dnet-v2": "DenseHighRes3DNet v2, synthetic only (network)", "none": "None"},
    "recon": {"gan": "ResNet → LSTM → 3D GAN (network)", "mc": "Marching cubes",
              "mc-fairing": "Marching cubes + fairing", "interp-mc": "Shape interpolation + marching cubes",
              "none": "None"},
    "device": {"auto": "Automatic (GPU when present)", "cpu": "CPU", "cuda": "CUDA GPU"},
}
# When to use which: one line each, for tooltips and the web app's hints.
METHOD_DESCRIPTIONS = {
    "lungs": {"snake": "Seeded contour per slice (seed paper 000); correct a slice and re-propagate.",
              "threshold": "Fast, no seeds; as accurate as the snake on make bench's lungs.",
              "resunet": "A network (paper 003); needs PyTorch; slower on CPU.",
              "none": "Skip the lungs: the tumour is then searched in the lung cavity."},
    "tumor": {"gk": "From a click on the tumour; chosen on make bench's validation chests; the best on nodules under 15 mm.",
              "fcm": "Like GK with round clusters; a second opinion.",
              "kmeans": "Hard clusters; fastest; slightly below GK on the validation chests.",
              "r3d-dense-unet": "Network (paper 001); below GK on the real cases; misses most nodules under 15 mm.",
              "lnhg": "Network (paper 002); not held out on the real cases; prefer GK.",
              "resunet": "Network (paper 003); missed the IBSI mass against the pleura.",
              "dense-highres3dnet": "Network (paper 004); below GK on the real cases; misses most nodules under 15 mm.",
              "dense-highres3dnet-v1": "The issue-20 v1 weights (synthetic training only).",
              "dense-highres3dnet-v2": "The issue-20 v2 weights (synthetic training only).",
              "none": "Skip the tumour."},
    "recon": {"gan": "Network (seed paper 000); smooth surfaces, close to MC + interpolation.",
              "mc": "The voxels' surface as they are; stair-stepped on thick slices.",
              "mc-fairing": "Marching cubes, then smoothed.",
              "interp-mc": "Interpolates between slices first; best on make bench's real cases.",
              "none": "Skip the 3D model."},
    "device": {"auto": "The GPU for networks when there is one, else the CPU.", "cpu": "Always the CPU.",
               "cuda": "An NVIDIA GPU (an error when there is none)."},
}
RECOMMENDED = "recommended"
METHOD_CHOICES = {"lungs": LUNG_METHODS, "tumor": TUMOR_METHODS, "recon": RECON_METHODS, "device": DEVICES}
STAGE_TITLES = {"all": "Run all", "lungs": "Lungs", "tumor": "Tumour", "recon": "3D reconstruction",
                "repropagate": "Re-propagation"}


def stage_title(stage) -> str:
    """A panel's title for a stage (a ``Stage`` or its id)."""
    return STAGE_TITLES[getattr(stage, "value", stage)]


def method_label(stage: str, method: str) -> str:
    """The words for a method id (the id itself when it has none), with the recommended mark on
    the stage's default, e.g. ``"Gustafson–Kessel fuzzy clustering — recommended"``."""
    label = METHOD_LABELS.get(stage, {}).get(method, method)
    return f"{label} — {RECOMMENDED}" if DEFAULTS.get(stage) == method else label


def method_description(stage: str, method: str) -> str:
    """When to use a method: one line for a tooltip ('' when there is none)."""
    return METHOD_DESCRIPTIONS.get(stage, {}).get(method, "")


_NOT_YET: dict[tuple[str, str], str] = {}  # (stage, method) -> the issue that will build it


def check_available(stage: str, method: str) -> None:
    choices = METHOD_CHOICES[stage]
    if method not in choices:
        raise UnavailableError(f"unknown method {method!r}; choose one of: {', '.join(choices)}", option=stage)
    if (stage, method) in _NOT_YET:
        raise UnavailableError(f"{method!r} is not available yet ({_NOT_YET[(stage, method)]})", option=stage)


def needs_torch(stage: str, lungs: str, tumor: str | None, recon: str, has_lungs: bool) -> bool:
    """Whether a panel's stage runs a network with these methods (the front end installs PyTorch
    first). The tumour stage runs the lung method only when there are no lungs yet."""
    finds_lungs = stage in ("all", "lungs") or (stage == "tumor" and not has_lungs)
    return ((finds_lungs and lungs in DEEP_LUNG_METHODS)
            or (stage in ("all", "tumor") and (tumor or "") in DEEP_TUMOR_METHODS)
            or (stage in ("all", "recon") and recon == "gan"))


def resolve_device(device: str, needs_torch: bool) -> str:
    """'cpu' or 'cuda'. Only imports torch when a method needs it or CUDA is asked for."""
    if device not in DEVICES:
        raise UnavailableError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}", option="device")
    if device == "cpu" or (device == "auto" and not needs_torch):
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise UnavailableError("cuda needs PyTorch, which is not installed", option="device") from None
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UnavailableError("cuda: no CUDA GPU is available here (choose cpu or auto)", option="device")
    return "cpu"
