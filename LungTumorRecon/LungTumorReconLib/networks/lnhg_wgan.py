"""LNHG's first branch: a WGAN-GP whose generator maps CT to the nodule image (seed paper 002:
"Automatic Lung Nodule Segmentation and Intra-Nodular Heterogeneity Image Generation",
§III-A/B, Fig. 2).

- **Generator**: a full-resolution 3D encoder–decoder (no pooling, no upsampling) on windows
  of three slices: 3×3×3 convolutions widening 1 → w1 → w2 → w3 → w4, each with batch norm
  and LeakyReLU, then narrowing w4 → w3 → w2 → w1 → 1, each output *added* to the encoder
  output of the same width (additive skips), the last to the input; a ReLU makes the output a
  non-negative image. The paper's widths are 32-64-128-256-128-64-32-1.
- **Its target** is the nodule image: the normalised CT inside the nodule, 0 elsewhere. The
  output thresholded is the segmentation candidate; its intensity inside the candidate is the
  intra-nodular heterogeneity image.
- **Critic** (Wasserstein, no sigmoid): 3D convolutions with LeakyReLU and no normalisation
  (a gradient penalty needs per-sample gradients), then one fully connected layer sized from
  the configured window (``window_slices`` × ``crop`` × ``crop``) instead of the authors'
  hard-coded 3 × 256 × 256.

Written by hand from the paper and the notes on its code (no library has these networks).
The shipped widths are narrower than the paper's so that it trains on two CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from LungTumorReconLib.networks.checks import check_positive_int, check_positive_ints, check_segmenter_settings


@dataclass(frozen=True)
class LnhgGeneratorConfig:
    widths: tuple[int, int, int, int] = (32, 64, 128, 256)  # the paper's
    window_slices: int = 3  # the paper's 3-slice volumes
    pixel_mm: float = 1.25
    slice_mm: float | None = None  # slice spacing the CT is resampled to; None: the CT's own slices
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    # on the generated nodule image (0..1): the candidate mask. The paper gives none (its code
    # renders > 0); 0.15 is the best of 0.05-0.4 on validation chests (synthetic seeds 9101-9103)
    threshold: float = 0.15
    crop: int = 64  # the critic's in-plane window (its fully connected layer depends on it)
    dilation_radius: int = 0

    def __post_init__(self) -> None:
        """Refuse impossible values (see :class:`NoduleGenerator`) with a ``ValueError``."""
        check_positive_ints("widths", self.widths, length=4)
        check_positive_int("crop", self.crop)
        check_segmenter_settings(self)

    @property
    def window_stride(self) -> int:
        return 1

    @property
    def in_plane_multiple(self) -> int:
        return 1  # full resolution: any size

    def as_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm3d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class NoduleGenerator(nn.Module):
    """(B, 1, S, H, W) normalised CT → (B, 1, S, H, W) nodule image ≥ 0, see the module doc.

    Parameters
    ----------
    config : LnhgGeneratorConfig, optional
        The encoder's four widths (the decoder mirrors them); and the settings of inference and
        training (slices per window, pixel size, HU window, the candidate threshold on the
        nodule image, the critic's crop, dilation radius). The paper's widths by default.

    Raises
    ------
    ValueError
        When the configuration is made: not four positive integer widths, ``crop`` or
        ``window_slices`` < 1, ``pixel_mm`` <= 0, an empty HU window, ``threshold`` outside
        0..1, or ``dilation_radius`` < 0.

    Examples
    --------
    >>> net = NoduleGenerator(LnhgGeneratorConfig(widths=(2, 4, 4, 8))).eval()
    >>> image = net(torch.zeros(1, 1, 3, 16, 16))
    >>> image.shape, bool((image >= 0).all())
    (torch.Size([1, 1, 3, 16, 16]), True)
    """

    def __init__(self, config: LnhgGeneratorConfig | None = None):
        super().__init__()
        self.config = config = config or LnhgGeneratorConfig()
        w = config.widths
        self.encoder = nn.ModuleList([_conv(1, w[0]), _conv(w[0], w[1]), _conv(w[1], w[2]), _conv(w[2], w[3])])
        self.decoder = nn.ModuleList([nn.Conv3d(w[3], w[2], 3, padding=1), nn.Conv3d(w[2], w[1], 3, padding=1),
                                      nn.Conv3d(w[1], w[0], 3, padding=1)])
        self.after_skip = nn.ModuleList([nn.Sequential(nn.BatchNorm3d(c), nn.LeakyReLU(0.2, inplace=True))
                                         for c in (w[2], w[1], w[0])])
        self.head = nn.Conv3d(w[0], 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        for conv, post, skip in zip(self.decoder, self.after_skip, reversed(skips[:-1])):
            h = post(conv(h) + skip)  # additive skip, then BN + LeakyReLU (as the authors' code)
        return torch.relu(self.head(h) + x)


class WassersteinCritic(nn.Module):
    """(B, 1, S, crop, crop) image → (B,) score, for the WGAN-GP loss."""

    def __init__(self, config: LnhgGeneratorConfig | None = None, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        config = config or LnhgGeneratorConfig()
        layers, cin = [], 1
        for cout in widths:
            layers += [nn.Conv3d(cin, cout, 3, stride=(1, 2, 2), padding=1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        side = config.crop
        for _ in widths:
            side = (side + 1) // 2
        self.score = nn.Linear(cin * config.window_slices * side * side, 1)  # sized from the configured window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x).flatten(1))[:, 0]


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``weight`` · E[(‖∇D(x̂)‖₂ − 1)²] at random points
    x̂ between real and generated samples (the paper's λ = 10)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
