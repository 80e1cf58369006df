"""Fine-tuning a shipped deep tumour segmenter on a site's own corrected cases, as MONAI Label
does: a few hundred steps from the shipped weights, on windows around the corrected tumours.

1. The model: a registry entry of architecture ``r3d-dense-unet``, ``dense-highres3dnet`` or
   ``resunet`` (tumour), named by its ``--tumor`` method or registry name; an ensemble is
   refused (fine-tune a member). Loaded with its shipped (SHA-256 checked) weights.
2. The cases (:mod:`.cases`), read and checked before any work; each cropped to its tumours.
3. Windows of the model's slice count × ``CROP_PX``² on the model's grid (the same
   ``model_grid_image`` / ``model_grid_label`` that inference and the shipped training use),
   centred on a tumour voxel 80% of the time; MONAI random flips; MONAI ``DiceFocalLoss``;
   Adam at ``LEARNING_RATE``. Batch-norm statistics stay frozen (see :func:`_freeze_norm`).
4. Validation Dice by the inference a user runs (:func:`segment_tumor_deep` from a seed in each
   tumour): on held-out cases when there are ``MIN_CASES_FOR_HOLD_OUT`` or more, else on
   synthetic chests when the developer package is importable, else on the training cases
   (model.json says which). Early stopping; the best weights by validation Dice are kept,
   the shipped ones when nothing did better.
5. ``OUT/model.safetensors`` and ``OUT/model.json``, written into a hidden folder and moved
   into place. The shipped registry is never changed; the weights are used with
   ``lungtumorrecon run CT --tumor METHOD --weights OUT/model.safetensors``.

Not for clinical use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib import __version__
from LungTumorReconLib.errors import InputError, LungTumorReconError, UnavailableError
from LungTumorReconLib.finetune.cases import TumorCase, find_case_pairs, read_cases
from LungTumorReconLib.io.output_folder import check_output_dir, partial_folder
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.events import Progress, ProgressEvent, Step, ignore_progress

ARCHITECTURES = ("r3d-dense-unet", "dense-highres3dnet", "resunet")
WEIGHTS_FILE = "model.safetensors"
SUMMARY_FILE = "model.json"
DEFAULT_STEPS = 200
LEARNING_RATE = 1e-4  # small: adapt the shipped weights, do not retrain them
BATCH = 2
CROP_PX = 64  # in-plane window, model pixels (rounded up to the model's in-plane multiple)
FOREGROUND = 0.8  # share of windows centred on a tumour voxel
MIN_CASES_FOR_HOLD_OUT = 3
HOLD_OUT_EVERY = 5  # one case in five (at least one) is held out for validation
VALIDATIONS = 5  # validations over a run (at most), besides the one before training
MIN_VALIDATE_EVERY = 10  # steps
PATIENCE = 3  # validations without a better Dice before stopping
SLICE_MARGIN_MM = 5.0  # per window slice, the context kept above and below the tumours
VALIDATION_MARGIN_MM = 24.0  # in-plane context validated around a tumour (less: validation runs often)
# Synthetic validation chests (developer package): generator seeds away from the shipped
# training's (100 on) and the benchmarks' (11, 23, 37, 9001 on); each holds a tumour at this size.
SYNTHETIC_VALIDATION = ((8102, ("solid",)), (8103, ("part-solid",)))
SYNTHETIC_SIZE, SYNTHETIC_SPACING = (160, 160, 32), (1.25, 1.25, 2.5)
NOT_FOR_CLINICAL_USE = ("Not for clinical use. Research software: these weights were adapted to the cases named here "
                        "and checked only by the validation Dice recorded here.")


class FinetuneCancelled(LungTumorReconError):
    """Fine-tuning was cancelled; nothing was written."""


@dataclass
class FinetuneResult:
    """What a finished fine-tuning wrote: the folder, its weights file and model.json's contents."""

    out_dir: Path
    weights: Path
    summary: dict


def finetunable_models() -> dict[str, str]:
    """The ``--tumor`` methods fine-tuning supports, each with its registry model.

    Returns
    -------
    dict of str to str
        Method id to registry name, for the deep tumour methods of a supported architecture.
    """
    from LungTumorReconLib.networks.registry import registry

    entries = registry()
    return {method: name for method, name in methods.DEEP_TUMOR_MODELS.items()
            if entries.get(name, {}).get("architecture") in ARCHITECTURES}


def resolve_model(name: str) -> tuple[str, str, dict]:
    """The ``--tumor`` method, registry name and registry entry for ``name`` (either).

    Parameters
    ----------
    name : str
        A deep tumour method (``r3d-dense-unet``) or its registry model (``resunet-tumor``).

    Returns
    -------
    tuple of (str, str, dict)
        The method, the registry name and its entry.

    Raises
    ------
    UnavailableError
        For an ensemble (its members are named), a model of another architecture, or an unknown name.
    """
    from LungTumorReconLib.networks.registry import registry

    entries = registry()
    registry_name = methods.DEEP_TUMOR_MODELS.get(name, name)
    entry = entries.get(registry_name)
    supported = ", ".join(finetunable_models())
    if entry is not None and entry["architecture"] == "ensemble":
        members = entry["members"]
        raise UnavailableError(f"{name!r} is an ensemble of {' and '.join(members)}: fine-tune one member at a time "
                               f"({', '.join(m for m in members if m in methods.DEEP_TUMOR_MODELS) or supported})",
                               option="model")
    method = next((m for m, n in finetunable_models().items() if n == registry_name), None)
    if method is None and entry is not None:  # another registry model (a fold, a base) of a method's network
        method = next((m for m, n in finetunable_models().items() if _same_network(entries.get(n), entry)), None)
    if entry is None or method is None:
        what = f"of architecture {entry['architecture']}" if entry is not None else "not a deep tumour model"
        raise UnavailableError(f"{name!r} is {what}; fine-tuning supports {supported}", option="model")
    return method, registry_name, entry


def _same_network(a: dict | None, b: dict) -> bool:
    """Whether two registry entries hold the same network (architecture and configuration, the
    post-processing aside): then one's weights load into the other's method."""
    loose = ("threshold", "dilation_radius")
    return (a is not None and a["architecture"] == b["architecture"]
            and {k: v for k, v in a["config"].items() if k not in loose}
            == {k: v for k, v in b["config"].items() if k not in loose})


def _freeze_norm(model) -> None:
    """Batch-norm layers keep their shipped statistics: a few windows of one site would replace
    statistics learnt from many cases (group norm has none)."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


@dataclass
class _GridCase:
    name: str
    image: np.ndarray  # (k', j', i') 0..1 on the model's grid
    label: np.ndarray  # bool, same shape


def _on_model_grid(case: TumorCase, config) -> _GridCase:
    from LungTumorReconLib.tumor.deep import model_grid_image, model_grid_label

    spacing_kji = tuple(float(v) for v in case.geometry.spacing[::-1])
    image = model_grid_image(case.hu, spacing_kji, config)[0, 0].numpy()
    return _GridCase(case.name, image, model_grid_label(case.mask, spacing_kji, config))


def _window(case: _GridCase, slices: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A (slices, size, size) window near a tumour voxel (``FOREGROUND``) or anywhere; air (0) beyond the edges."""
    if rng.random() < FOREGROUND:  # every case has a tumour (read_pair refuses an empty one)
        tumour = np.argwhere(case.label)
        jitter = np.array([0, *rng.integers(-size // 4, size // 4 + 1, size=2)])
        centre = tumour[rng.integers(len(tumour))] + jitter
    else:
        centre = np.array([rng.integers(n) for n in case.image.shape])
    first = centre - np.array([slices, size, size]) // 2
    last = first + [slices, size, size]
    inside = tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(first, last, case.image.shape))
    outside = [(max(-int(a), 0), max(int(b) - n, 0)) for a, b, n in zip(first, last, case.image.shape)]
    return (np.pad(case.image[inside], outside).astype(np.float32),
            np.pad(case.label[inside], outside).astype(np.float32))


def _flips(seed: int):
    """MONAI random flips: left-right, and head-foot (a tumour seen upside down is still one)."""
    from monai.transforms import Compose, RandFlipd

    transform = Compose([RandFlipd(("image", "label"), spatial_axis=2, prob=0.5),
                         RandFlipd(("image", "label"), spatial_axis=0, prob=0.3)])
    transform.set_random_state(seed)
    return transform


def _seeds_in(mask: np.ndarray, spacing_kji) -> list[tuple[int, int, int]]:
    """One seed per tumour: its innermost voxel (where a user clicks)."""
    labels, n = ndi.label(mask)
    seeds = []
    for index in range(1, n + 1):
        depth = ndi.distance_transform_edt(labels == index, sampling=spacing_kji)
        seeds.append(tuple(int(v) for v in np.unravel_index(np.argmax(depth), depth.shape)))
    return seeds


def validation_dice(model, cases: list[TumorCase], device: str = "cpu") -> float:
    """Mean Dice of the tumour segmented from a seed in each tumour, as a user runs it.

    Parameters
    ----------
    model : torch.nn.Module
        A registry segmenter; evaluated in eval mode, left in the mode it was in.
    cases : list of TumorCase
        The validation cases (a tumour each, at least).
    device : str, optional
        The torch device.

    Returns
    -------
    float
        The mean Dice over the cases, 0-1.
    """
    from LungTumorReconLib.tumor.deep import segment_tumor_deep

    was_training = model.training
    model.eval()
    scores = []
    try:
        for case in cases:
            spacing_kji = tuple(float(v) for v in case.geometry.spacing[::-1])
            found = segment_tumor_deep(model, case.hu, case.geometry, _seeds_in(case.mask, spacing_kji),
                                       device=device).mask
            total = int(found.sum()) + int(case.mask.sum())
            scores.append(2.0 * int((found & case.mask).sum()) / total if total else 1.0)
    finally:
        if was_training:
            model.train()
            _freeze_norm(model)
    return float(np.mean(scores))


def _recrop(case: TumorCase, margin_mm) -> TumorCase:
    """A case cut down to its tumours and ``margin_mm`` (k, j, i)."""
    from LungTumorReconLib.finetune.cases import crop_to_tumor
    from LungTumorReconLib.io.ct import CTVolume

    return crop_to_tumor(case.name, CTVolume(case.hu, case.geometry), case.mask, margin_mm)


def _synthetic_validation(margin_mm) -> list[TumorCase]:
    """Synthetic chests from the developer package, or [] where it is not installed (in Slicer)."""
    try:
        from LungTumorReconDev.tumor_datasets import synthetic_tumor_case
    except ImportError:
        return []
    from LungTumorReconLib.finetune.cases import crop_to_tumor
    from LungTumorReconLib.io.ct import CTVolume

    cases = []
    for seed, kinds in SYNTHETIC_VALIDATION:
        case = synthetic_tumor_case(seed, kinds, size=SYNTHETIC_SIZE, spacing=SYNTHETIC_SPACING)
        if case.mask.any():
            ct = CTVolume(array=case.hu, geometry=case.geometry, path=f"synthetic:{seed}")
            cases.append(crop_to_tumor(f"synthetic:{seed}", ct, case.mask, margin_mm))
    return cases


def split_cases(cases: list[TumorCase], validation: str, margin_mm,
                seed: int = 0) -> tuple[list[TumorCase], list[TumorCase], str]:
    """Training and validation cases, and what validation is on (for model.json).

    Parameters
    ----------
    cases : list of TumorCase
        The folder's cases.
    validation : str
        ``"auto"``: held-out cases when there are ``MIN_CASES_FOR_HOLD_OUT`` or more, else synthetic
        chests where available, else the training cases; or ``"held-out"``, ``"synthetic"``, ``"training"``.
    margin_mm : tuple of float
        The context kept around a synthetic chest's tumour (k, j, i).
    seed : int, optional
        Which cases are held out.

    Returns
    -------
    tuple of (list, list, str)
        Training cases, validation cases, and a sentence saying what the validation measures.

    Raises
    ------
    InputError
        For an unknown ``validation``, held-out validation with a single case, or synthetic
        validation without the developer package.
    """
    if validation not in ("auto", "held-out", "synthetic", "training"):
        raise InputError(f"validation {validation!r}: choose auto, held-out, synthetic or training",
                         option="validation")
    if validation == "held-out" or (validation == "auto" and len(cases) >= MIN_CASES_FOR_HOLD_OUT):
        if len(cases) < 2:
            raise InputError("held-out validation needs two cases or more", option="validation")
        order = np.random.default_rng(seed).permutation(len(cases))
        held = {int(i) for i in order[: max(1, len(cases) // HOLD_OUT_EVERY)]}
        return ([c for i, c in enumerate(cases) if i not in held], [c for i, c in enumerate(cases) if i in held],
                "held-out cases of the folder, never trained on")
    if validation in ("auto", "synthetic"):
        synthetic = _synthetic_validation(margin_mm)
        if synthetic:
            return cases, synthetic, ("synthetic chests (too few cases to hold one out): this checks that the model "
                                      "kept what it did before, not how well it does on this site's cases")
        if validation == "synthetic":
            raise InputError("synthetic validation needs the developer package LungTumorReconDev", option="validation")
    return cases, list(cases), ("the training cases themselves (too few cases to hold one out, and no synthetic "
                                "chests here): this Dice is optimistic and says nothing of unseen cases")


def check_inputs(model_name: str, cases_dir: str | Path, out_dir: str | Path, steps: int,
                 max_minutes: float | None = None, overwrite: bool = False) -> tuple[str, str, dict]:
    """What :func:`finetune` refuses before any work, without reading a CT or loading torch.

    Parameters
    ----------
    model_name, cases_dir, out_dir, steps, max_minutes, overwrite
        As :func:`finetune` takes them.

    Returns
    -------
    tuple of (str, str, dict)
        The method, registry name and registry entry (:func:`resolve_model`).

    Raises
    ------
    LungTumorReconError
        A bad number, model or output folder, or a cases folder that is missing, empty or
        holds unpaired files.
    """
    if isinstance(steps, bool) or not (isinstance(steps, int) and steps > 0):
        raise InputError(f"{steps!r}: give a positive number of steps", option="steps")
    if max_minutes is not None and not max_minutes > 0:
        raise InputError(f"{max_minutes!r}: give a positive number of minutes", option="max_minutes")
    resolved = resolve_model(model_name)
    check_output_dir(out_dir, overwrite)
    find_case_pairs(cases_dir)
    return resolved


def finetune(model_name: str, cases_dir: str | Path, out_dir: str | Path, steps: int = DEFAULT_STEPS,
             max_minutes: float | None = None, validation: str = "auto", progress: Progress | None = None,
             cancel: Callable[[], bool] | None = None, overwrite: bool = False, device: str = "cpu",
             seed: int = 0) -> FinetuneResult:
    """Fine-tune a shipped tumour segmenter on the corrected cases of ``cases_dir`` (module doc).

    Parameters
    ----------
    model_name : str
        A deep tumour method or its registry model (see :func:`resolve_model`).
    cases_dir : str or Path
        The folder of ``CASE.nrrd`` / ``CASE.seg.nrrd`` pairs (:mod:`.cases`).
    out_dir : str or Path
        Where ``model.safetensors`` and ``model.json`` go; must not exist or be empty unless ``overwrite``.
    steps : int, optional
        Training steps at most (each a batch of ``BATCH`` windows).
    max_minutes : float, optional
        Stop training after this long, whatever the steps.
    validation : str, optional
        What validation runs on (see :func:`split_cases`).
    progress : callable, optional
        Receives :class:`ProgressEvent` s with the fraction done.
    cancel : callable, optional
        Asked between steps; True stops the run with :class:`FinetuneCancelled`, nothing written.
    overwrite : bool, optional
        Replace a non-empty ``out_dir``.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    seed : int, optional
        Seeds the windows, the flips and the held-out cases.

    Returns
    -------
    FinetuneResult
        The folder, the weights file and model.json's contents.

    Raises
    ------
    LungTumorReconError
        Bad input before any work (model, numbers, cases, output folder; nothing is written),
        or :class:`FinetuneCancelled`.
    """
    from LungTumorReconLib.networks.registry import load_model

    progress = progress or ignore_progress
    method, registry_name, entry = check_inputs(model_name, cases_dir, out_dir, steps, max_minutes, overwrite)
    out_dir = Path(out_dir)
    device = methods.resolve_device(device, needs_torch=True)
    t0 = time.perf_counter()
    model = load_model(registry_name, device=device)
    config = model.config
    margin_mm = (config.window_slices * SLICE_MARGIN_MM,) + (CROP_PX * config.pixel_mm * 0.75,) * 2
    progress(ProgressEvent(Step.READ, f"reading the cases in {cases_dir}", 0.0))
    cases = read_cases(cases_dir, margin_mm)
    valid_margin_mm = (config.window_slices * SLICE_MARGIN_MM / 2, VALIDATION_MARGIN_MM, VALIDATION_MARGIN_MM)
    train, valid, validated_on = split_cases(cases, validation, valid_margin_mm, seed)
    valid = [_recrop(c, valid_margin_mm) for c in valid]
    progress(ProgressEvent(Step.TUMOR, f"validation Dice of the shipped {registry_name}", 0.05))
    run = _Run(model, [_on_model_grid(c, config) for c in train], valid, device, seed)
    run.train(steps, max_minutes * 60.0 if max_minutes else None, t0, progress, cancel or (lambda: False))
    model.load_state_dict(run.best_state)
    summary = _summary(method, registry_name, entry, train, valid, validated_on, run, steps, max_minutes, out_dir)
    summary.update(seconds=round(time.perf_counter() - t0, 1), training={**summary["training"], "seed": seed,
                                                                          "device": device})
    progress(ProgressEvent(Step.WRITE, f"writing {out_dir}", 0.97))
    write_model(model, summary, out_dir, overwrite)
    progress(ProgressEvent(Step.DONE, f"done: {out_dir / WEIGHTS_FILE}", 1.0))
    return FinetuneResult(out_dir, out_dir / WEIGHTS_FILE, summary)


def _torch_version() -> str:
    import torch

    return torch.__version__


class _Run:
    """One fine-tuning loop: windows, flips, loss, Adam, validation and early stopping; the
    best weights by validation Dice are kept (step 0: the shipped ones)."""

    def __init__(self, model, grid: list[_GridCase], valid: list[TumorCase], device: str, seed: int) -> None:
        import torch
        from monai.losses import DiceFocalLoss

        self.model, self.grid, self.valid, self.device = model, grid, valid, device
        config = model.config
        self.slices = config.window_slices
        self.crop = -(-CROP_PX // config.in_plane_multiple) * config.in_plane_multiple
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.flips = _flips(seed)
        self.loss_fn = DiceFocalLoss(sigmoid=True)
        self.optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        self.step, self.stopped = 0, "steps"
        dice = validation_dice(model, valid, device)
        self.history: list[dict] = [{"step": 0, "dice": round(dice, 4)}]
        self.best_dice, self.best_step, self.best_state = dice, 0, self._state()

    def _state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _batch(self):
        import torch

        images, labels = [], []
        for _ in range(BATCH):
            image, label = _window(self.grid[self.rng.integers(len(self.grid))], self.slices, self.crop, self.rng)
            flipped = self.flips({"image": image[None], "label": label[None]})
            images.append(torch.as_tensor(np.asarray(flipped["image"]), dtype=torch.float32))
            labels.append(torch.as_tensor(np.asarray(flipped["label"]), dtype=torch.float32))
        return torch.stack(images).to(self.device), torch.stack(labels).to(self.device)

    def train(self, steps: int, limit_s: float | None, t0: float, progress: Progress,
              cancel: Callable[[], bool]) -> None:
        every = max(MIN_VALIDATE_EVERY, steps // VALIDATIONS)
        stale = 0
        self.model.train()
        _freeze_norm(self.model)
        while self.step < steps:
            if cancel():
                raise FinetuneCancelled("fine-tuning cancelled; nothing was written")
            x, y = self._batch()
            batch_loss = self.loss_fn(self.model(x), y)
            self.optimiser.zero_grad()
            batch_loss.backward()
            self.optimiser.step()
            self.step, loss = self.step + 1, float(batch_loss.item())
            elapsed = time.perf_counter() - t0
            out_of_time = limit_s is not None and elapsed >= limit_s
            fraction = min(0.95, 0.05 + 0.9 * max(self.step / steps, elapsed / limit_s if limit_s else 0.0))
            message = f"step {self.step}/{steps}: loss {loss:.3f}"
            if self.step % every and self.step != steps and not out_of_time:
                if self.step % 5 == 0:
                    progress(ProgressEvent(Step.TUMOR, message, fraction))
                continue
            dice = validation_dice(self.model, self.valid, self.device)
            self.history.append({"step": self.step, "loss": round(loss, 4), "dice": round(dice, 4)})
            progress(ProgressEvent(Step.TUMOR, f"{message}, validation Dice {dice:.3f}", fraction))
            if dice > self.best_dice + 1e-4:
                self.best_dice, self.best_step, self.best_state, stale = dice, self.step, self._state(), 0
            else:
                stale += 1
            if out_of_time or stale >= PATIENCE:
                self.stopped = "time" if out_of_time else "early stopping"
                break


def _summary(method: str, registry_name: str, entry: dict, train: list[TumorCase], valid: list[TumorCase],
             validated_on: str, run: _Run, steps: int, max_minutes: float | None, out_dir: Path) -> dict:
    """model.json: what was fine-tuned, on what, how, and how it validated."""
    return {
        "base_model": registry_name,
        "tumor_method": method,
        "architecture": entry["architecture"],
        "config": entry["config"],
        "base_sha256": entry["sha256"],
        "weights": WEIGHTS_FILE,
        "cases": {"training": [c.name for c in train], "validation": [c.name for c in valid]},
        "validation": {"on": validated_on, "dice_before": run.history[0]["dice"],
                       "dice_after": round(run.best_dice, 4), "best_step": run.best_step, "history": run.history},
        "kept": ("the shipped weights (no validation did better)" if run.best_step == 0
                 else f"the weights of step {run.best_step}"),
        "steps": run.step, "max_steps": steps, "max_minutes": max_minutes, "stopped_by": run.stopped,
        "training": {"batch": BATCH, "window": [run.slices, run.crop, run.crop], "lr": LEARNING_RATE,
                     "loss": "MONAI DiceFocalLoss", "augmentation": "MONAI random flips (left-right, head-foot)",
                     "batch_norm": "frozen"},
        "use": f"lungtumorrecon run CT --tumor {method} --weights {Path(out_dir).resolve() / WEIGHTS_FILE}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"lungtumorrecon": __version__, "torch": _torch_version()},
        "not_for_clinical_use": NOT_FOR_CLINICAL_USE,
    }


def write_model(model, summary: dict, out_dir: str | Path, overwrite: bool = False) -> Path:
    """``model.safetensors`` (the state dict) and ``model.json`` into ``out_dir``, all at once;
    the weights are loaded back into a fresh network of the architecture before the move.

    Parameters
    ----------
    model : torch.nn.Module
        The fine-tuned network.
    summary : dict
        model.json's contents (``architecture`` and ``config`` say how to build the network).
    out_dir : str or Path
        The folder to make (see :func:`~LungTumorReconLib.io.output_folder.partial_folder`).
    overwrite : bool, optional
        Replace a non-empty ``out_dir``.

    Returns
    -------
    Path
        The weights file in ``out_dir``.
    """
    from safetensors.torch import save_file

    from LungTumorReconLib.networks.registry import build_network, load_weights

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with partial_folder(out_dir, overwrite) as partial:
        save_file(state, str(partial / WEIGHTS_FILE), metadata={"base_model": summary["base_model"],
                                                                 "not_for_clinical_use": "true"})
        load_weights(build_network(summary["architecture"], summary["config"]), partial / WEIGHTS_FILE)
        (partial / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return Path(out_dir) / WEIGHTS_FILE
