"""ResUNet, the network of seed paper 003's two stages (organ, then tumour inside it), after
Zhang, Liu and Wang, "Road extraction by deep residual U-Net", IEEE GRSL 2018.

- **Input**: HU windowing, histogram equalisation, [0, 1] (seed paper 003, §III-B). The
  equalisation curve is the cumulative histogram of the *training set's* windowed voxels
  (air outside the body excluded), fixed in the configuration (``equalisation``: the curve at
  evenly spaced knots) and applied as the network's first operation. Per-image equalisation,
  as in the paper's 2D slices, would make a voxel's input depend on the region it is cut
  from, and a seed box, the lungs' box and a training window are different regions.
- **Encoder**: three blocks. The first is conv → BN–ReLU–conv with a 1×1 shortcut; the next
  two are pre-activated residual blocks (BN–ReLU–conv, BN–ReLU–conv; He et al. 2016) whose
  first convolution has stride 2. Each block's output is a skip.
- **Bridge**: a pre-activated residual block of stride 2.
- **Decoder**: three blocks of 2× upsampling, concatenation with the skip, and a
  pre-activated residual block; a 1×1 convolution gives one logit per class.

The network is 2D, as the paper's: windows of one slice (``window_slices = 1``) go through
the shared inference of :mod:`deep_tumor`, slice by slice. Written by hand: no well-kept
library has this network (MONAI's ``UNet`` with residual units is post-activation and has no
stride-2 residual blocks in this arrangement). Widths are narrower than Zhang et al.'s
64–512, so that it trains and runs on 2 CPU cores (see the model card).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from LungTumorReconLib.networks.checks import check_positive_int, check_positive_ints, check_segmenter_settings

IDENTITY_CURVE = tuple(i / 32 for i in range(33))


@dataclass(frozen=True)
class ResUNetConfig:
    out_channels: int = 1  # tumour: 1; lungs: 2 (the lung on the image's low-i side, then the other)
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)  # encoder blocks 1-3, then the bridge
    window_slices: int = 1  # 2D
    pixel_mm: float = 1.25  # in-plane spacing the CT is resampled to
    slice_mm: float | None = None  # slice spacing the CT is resampled to; None: the CT's own slices
    hu_window: tuple[float, float] = (-1000.0, 400.0)  # a lung window (the paper's liver window: -100, 400)
    equalisation: tuple[float, ...] = IDENTITY_CURVE  # the cumulative histogram at evenly spaced knots
    threshold: float = 0.5
    dilation_radius: int = 0

    def __post_init__(self) -> None:
        """Refuse impossible values (see :class:`ResUNet`) with a ``ValueError``."""
        check_positive_int("out_channels", self.out_channels)
        check_positive_ints("widths", self.widths, length=4)
        curve = np.asarray(self.equalisation, dtype=float)
        if curve.ndim != 1 or len(curve) < 2 or np.any(np.diff(curve) < 0):
            raise ValueError("equalisation must be a non-decreasing curve of two or more knots")
        check_segmenter_settings(self)

    @property
    def window_stride(self) -> int:
        return 1

    @property
    def in_plane_multiple(self) -> int:
        return 8  # two encoder blocks and the bridge halve the size

    def as_dict(self) -> dict:
        return asdict(self)


HISTOGRAM_BINS = 1024


def intensity_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of windowed intensities in 0..1 over ``HISTOGRAM_BINS`` bins, without the 0s
    (air outside the body): summed over cases (and processes) before :func:`equalisation_curve`."""
    v = np.asarray(values, dtype=np.float32).ravel()
    return np.histogram(v[v > 0], bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0].astype(np.int64)


def equalisation_curve(counts: np.ndarray, knots: int = 33) -> tuple[float, ...]:
    """Histogram equalisation: the cumulative distribution of ``counts`` (from
    :func:`intensity_histogram`) at ``knots`` evenly spaced intensities; 0 maps to 0, 1 to 1."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        return IDENTITY_CURVE
    cdf = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])  # at the bin edges
    edges = np.linspace(0.0, 1.0, len(counts) + 1)
    return tuple(float(round(c, 6)) for c in np.interp(np.linspace(0.0, 1.0, knots), edges, cdf))


def equalise(x: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``curve`` (values at evenly spaced knots over 0..1) applied to ``x``."""
    n = curve.numel() - 1
    t = x.clamp(0.0, 1.0) * n
    lo = t.floor().clamp(max=n - 1)
    frac = t - lo
    lo = lo.long()
    return curve[lo] * (1 - frac) + curve[lo + 1] * frac


class PreActResidualBlock(nn.Module):
    """BN–ReLU–conv3×3 (stride s), BN–ReLU–conv3×3, plus a 1×1 conv–BN shortcut when the
    shape changes (pre-activation: He et al., "Identity mappings in deep residual networks")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, first: bool = False):
        super().__init__()
        # The first block of the encoder takes the image itself: no activation before its first conv.
        pre = [] if first else [nn.BatchNorm2d(in_channels), nn.ReLU(inplace=False)]
        self.body = nn.Sequential(
            *pre,
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else
                         nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class ResUNet(nn.Module):
    """Input (B, 1, 1, H, W) (one-slice windows) or (B, 1, H, W) → logits of the same layout.

    H and W are multiples of 8; the output has ``config.out_channels`` channels.

    Parameters
    ----------
    config : ResUNetConfig, optional
        Output channels (1: tumour; 2: the two lungs), the widths of the three encoder blocks
        and the bridge, the equalisation curve (the network's first operation); and the
        inference settings (slices per window, pixel size, HU window, threshold, dilation
        radius). The tumour stage's defaults.

    Raises
    ------
    ValueError
        When the configuration is made: ``out_channels`` or a width not a positive integer,
        not four widths, an equalisation curve that decreases or has fewer than two knots,
        ``window_slices`` < 1, ``pixel_mm`` <= 0, an empty HU window, ``threshold`` outside
        0..1, or ``dilation_radius`` < 0.

    Examples
    --------
    >>> net = ResUNet(ResUNetConfig(out_channels=2, widths=(4, 4, 8, 8))).eval()
    >>> net(torch.zeros(1, 1, 1, 16, 24)).shape
    torch.Size([1, 2, 1, 16, 24])
    """

    def __init__(self, config: ResUNetConfig | None = None):
        super().__init__()
        self.config = config = config or ResUNetConfig()
        w1, w2, w3, wb = config.widths
        self.register_buffer("curve", torch.tensor(config.equalisation, dtype=torch.float32), persistent=False)
        self.encoders = nn.ModuleList([
            PreActResidualBlock(1, w1, first=True),
            PreActResidualBlock(w1, w2, stride=2),
            PreActResidualBlock(w2, w3, stride=2),
        ])
        self.bridge = PreActResidualBlock(w3, wb, stride=2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.decoders = nn.ModuleList([
            PreActResidualBlock(wb + w3, w3),
            PreActResidualBlock(w3 + w2, w2),
            PreActResidualBlock(w2 + w1, w1),
        ])
        self.head = nn.Sequential(nn.BatchNorm2d(w1), nn.ReLU(inplace=True), nn.Conv2d(w1, config.out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        volumetric = x.dim() == 5
        if volumetric:
            b, c, s, h, w = x.shape
            x = x.permute(0, 2, 1, 3, 4).reshape(b * s, c, h, w)  # slices into the batch
        x = equalise(x, self.curve)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        x = self.bridge(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = decoder(torch.cat([self.up(x), skip], dim=1))
        x = self.head(x)
        if volumetric:
            x = x.reshape(b, s, -1, h, w).permute(0, 2, 1, 3, 4)
        return x
