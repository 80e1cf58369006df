"""Validation during a segmenter's training: Dice on fixed windows of held-out cases, the
learning curve (``metrics.jsonl``), the best weights kept and early stopping.

The validation cases are synthetic chests with generator seeds of their own
(:data:`VALIDATION_FIRST_SEED`: neither training nor any benchmark uses them). The real case a
fold leaves out is also scored, for the learning curve only: nothing is chosen on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage as ndi

VALIDATION_FIRST_SEED = 5000
VALIDATION_CROP = 96  # model pixels: a 100 mm mass fits at 1.25 mm


@dataclass
class ValidationSet:
    """Fixed windows (image, label), one per tumour and one without: (N, 1, slices, crop, crop)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor


def fixed_windows(cases, slices: int, crop: int = VALIDATION_CROP) -> tuple[torch.Tensor, torch.Tensor]:
    """A window centred on each tumour (its connected components over 20 voxels, at their
    centroid) and one away from all of them, per case; padded with air."""
    from segmenter_training import padded_window  # the training sampler's crop

    images, labels = [], []
    for case in cases:
        components, n = ndi.label(case.label)
        centres = [np.rint(c).astype(int) for c, size in zip(
            ndi.center_of_mass(case.label, components, range(1, n + 1)),
            ndi.sum(case.label, components, range(1, n + 1))) if size > 20]
        shape = np.array(case.image.shape)
        centres.append(shape // 2 + np.array([0, 0, shape[2] // 4]))  # a lung-ish window without a tumour centre
        for centre in centres:
            image, label = padded_window(case, centre, (slices, crop, crop))
            images.append(image)
            labels.append(label)
    return torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(np.stack(labels))[:, None]


def choose_post_processing(model: torch.nn.Module, validation: ValidationSet, thresholds, radii,
                           batch: int = 2) -> tuple[float, int, float]:
    """The (threshold, in-plane dilation radius in model pixels) of the best pooled Dice on the
    validation windows, and that Dice: seed paper 001's post-processing, chosen on validation."""
    was_training = model.training
    model.eval()
    probabilities, labels = [], []
    with torch.inference_mode():
        for start in range(0, len(validation.images), batch):
            probabilities.append(torch.sigmoid(model(validation.images[start:start + batch])).numpy())
            labels.append(validation.labels[start:start + batch].numpy() > 0.5)
    model.train(was_training)
    p, y = np.concatenate(probabilities), np.concatenate(labels)
    best = (thresholds[0], 0, -1.0)
    for radius in radii:
        jj, ii = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        disk = (jj ** 2 + ii ** 2 <= radius ** 2)[None, None, None]
        for t in thresholds:
            mask = p >= t
            if radius:
                mask = ndi.binary_dilation(mask, structure=disk)
            total = mask.sum() + y.sum()
            dice = 2.0 * (mask & y).sum() / total if total else 1.0
            if dice > best[2] + 1e-4:
                best = (t, radius, float(dice))
    return best


def dice_on(model: torch.nn.Module, validation: ValidationSet, thresholds) -> float:
    """The best pooled Dice over ``thresholds``: the validation score, which a shift of the
    network's calibration between losses (Dice, focal) does not swing."""
    return choose_post_processing(model, validation, thresholds, radii=(0,))[2]


@dataclass
class EarlyStopping:
    """Keeps the best state by validation Dice; stops after ``patience`` validations without a gain."""

    patience: int
    best_dice: float = -1.0
    best_step: int = 0
    best_state: dict = field(default_factory=dict)
    waited: int = 0
    last_dice: float = -1.0

    def update(self, model: torch.nn.Module, step: int, dice: float) -> bool:
        """Record a validation; True when training should stop."""
        self.last_dice = dice
        if dice > self.best_dice + 1e-4:
            self.best_dice, self.best_step, self.waited = dice, step, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.waited += 1
        return self.waited >= self.patience
