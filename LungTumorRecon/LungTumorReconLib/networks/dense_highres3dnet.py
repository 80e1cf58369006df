"""DenseHighRes3DNet for lung-tumour segmentation (seed paper 004: "DenseHighRes3DNet", §3,
Figs. 3–4), on HighRes3DNet (Li et al., IPMI 2017).

- **DDC** (dense down-sampling convolution) at the input: space-to-depth by ``r`` (each
  r×r×r block of voxels becomes r³ channels), then a 3×3×3 convolution; the network runs at
  1/r resolution, which is what makes it cheap;
- **residual blocks with dilation** (MONAI ``HighResBlock``: two conv–norm–ReLU with a
  residual path), in stages of growing width;
- **hybrid dilated convolution** (HDC, Wang et al. 2018): consecutive blocks in a stage use
  dilations (1, 2, 5), which share no factor, so the receptive field has no holes
  (no gridding), instead of HighRes3DNet's repeated 2, 2, 2 and 4, 4, 4;
- **group normalisation** instead of batch normalisation (small batches);
- **dense lateral connections**: low-level features concatenated with high-level ones;
- **DUC** (dense up-sampling convolution) at the output: a convolution to r³ channels per
  class, then depth-to-space back to full resolution.

The two versions. The paper's Figure 3 (an image: its exact layers are not in the text)
shows two networks that differ in how the lateral connections run. Our reading:
- **v1**: every stage's output is concatenated with the DDC features before the DUC head;
- **v2**: dense connectivity between stages as well (each stage sees the concatenation of
  the DDC features and all earlier stages), and the same head.
``use_dense_sampling=False`` replaces DDC and DUC by a strided convolution and a transposed
convolution (the bench's ablation).

Written by hand from the paper (no library has DDC/DUC or this network); blocks from MONAI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets.highresnet import HighResBlock
from torch import nn

from LungTumorReconLib.networks.checks import check_positive_int, check_positive_ints, check_segmenter_settings


@dataclass(frozen=True)
class DenseHighRes3DNetConfig:
    version: int = 1  # 1 or 2, see the module doc
    in_channels: int = 1
    factor: int = 2  # DDC / DUC factor r
    stem: int = 16
    stage_widths: tuple[int, ...] = (16, 24, 32)
    dilations: tuple[int, ...] = (1, 2, 5)  # HDC: one residual block per dilation, in each stage
    groups: int = 4  # group normalisation
    use_dense_sampling: bool = True  # False: strided conv in, transposed conv out (the ablation)
    window_slices: int = 16  # slices per window (a multiple of factor)
    pixel_mm: float = 1.25
    slice_mm: float | None = None  # slice spacing the CT is resampled to; None: the CT's own slices
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    threshold: float = 0.5  # the paper's binarisation
    dilation_radius: int = 0  # no morphological post-processing in the paper

    def __post_init__(self) -> None:
        """Refuse impossible values (see :class:`DenseHighRes3DNet`) with a ``ValueError``."""
        if self.version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {self.version}")
        for name in ("in_channels", "factor", "stem", "groups"):
            check_positive_int(name, getattr(self, name))
        check_positive_ints("stage_widths", self.stage_widths)
        check_positive_ints("dilations", self.dilations)
        if any(width % self.groups for width in (self.stem, *self.stage_widths)):
            raise ValueError(f"stem and stage_widths must be multiples of groups={self.groups} (group normalisation)")
        check_segmenter_settings(self)
        if self.window_slices % self.factor:
            raise ValueError(f"window_slices={self.window_slices} must be a multiple of factor={self.factor}")

    @property
    def window_stride(self) -> int:
        return self.window_slices // 2

    @property
    def in_plane_multiple(self) -> int:
        return self.factor

    def as_dict(self) -> dict:
        return asdict(self)


def space_to_depth(x: torch.Tensor, r: int) -> torch.Tensor:
    """(B, C, D, H, W) → (B, C·r³, D/r, H/r, W/r): each r³ block of voxels becomes channels."""
    b, c, d, h, w = x.shape
    x = x.view(b, c, d // r, r, h // r, r, w // r, r)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, c * r ** 3, d // r, h // r, w // r)


def depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """The inverse of :func:`space_to_depth`."""
    b, c, d, h, w = x.shape
    x = x.view(b, c // r ** 3, r, r, r, d, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, c // r ** 3, d * r, h * r, w * r)


class DenseDownsampling(nn.Module):
    """DDC: space-to-depth by r, then a 3×3×3 conv–GN–ReLU."""

    def __init__(self, in_channels: int, out_channels: int, r: int, norm):
        super().__init__()
        self.r = r
        self.conv = Convolution(3, in_channels * r ** 3, out_channels, act="RELU", norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(space_to_depth(x, self.r))


class DenseUpsampling(nn.Module):
    """DUC: a 3×3×3 convolution to r³ channels per output channel, then depth-to-space."""

    def __init__(self, in_channels: int, out_channels: int, r: int):
        super().__init__()
        self.r = r
        self.conv = nn.Conv3d(in_channels, out_channels * r ** 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x), self.r)


class DenseHighRes3DNet(nn.Module):
    """(B, 1, D, H, W) with D, H, W multiples of ``factor`` → tumour logits of the same shape.

    Parameters
    ----------
    config : DenseHighRes3DNetConfig, optional
        The version (1 or 2: how the lateral connections run), input channels, DDC/DUC factor
        r, stem and stage widths, the HDC dilations of each stage's residual blocks, the group
        normalisation's groups, dense or strided sampling; and the inference settings (slices
        per window, pixel size, HU window, threshold, dilation radius). The shipped defaults.

    Raises
    ------
    ValueError
        When the configuration is made: ``version`` not 1 or 2; a channel count, width, factor,
        dilation or group count not a positive integer; a width not a multiple of ``groups``;
        ``window_slices`` not a positive multiple of ``factor``; ``pixel_mm`` <= 0; an empty HU
        window; ``threshold`` outside 0..1; or ``dilation_radius`` < 0.

    Examples
    --------
    >>> net = DenseHighRes3DNet(DenseHighRes3DNetConfig(stem=4, stage_widths=(4, 4), groups=2)).eval()
    >>> net(torch.zeros(1, 1, 4, 8, 8)).shape
    torch.Size([1, 1, 4, 8, 8])
    """

    def __init__(self, config: DenseHighRes3DNetConfig = DenseHighRes3DNetConfig()):
        super().__init__()
        self.config = config
        r, norm = config.factor, ("GROUP", {"num_groups": config.groups})
        if config.use_dense_sampling:
            self.down = DenseDownsampling(config.in_channels, config.stem, r, norm)
        else:
            self.down = Convolution(3, config.in_channels, config.stem, strides=r, kernel_size=r, padding=0,
                                    act="RELU", norm=norm)
        self.stages = nn.ModuleList()
        seen = [config.stem]  # channels of the stem and of each stage's output
        for width in config.stage_widths:
            in_channels = sum(seen) if config.version == 2 else seen[-1]
            blocks = []
            for dilation in config.dilations:
                blocks.append(HighResBlock(3, in_channels, width, dilation=dilation, norm_type=norm,
                                           acti_type=("relu", {"inplace": True}), channel_matching="project"))
                in_channels = width
            self.stages.append(nn.Sequential(*blocks))
            seen.append(width)
        fused = sum(seen)  # dense lateral connections: the stem and every stage, concatenated
        self.fuse = Convolution(3, fused, config.stage_widths[-1], kernel_size=1, act="RELU", norm=norm)
        if config.use_dense_sampling:
            self.up = DenseUpsampling(config.stage_widths[-1], 1, r)
        else:
            self.up = nn.ConvTranspose3d(config.stage_widths[-1], 1, r, stride=r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.down(x)]
        for stage in self.stages:
            inputs = torch.cat(features, dim=1) if self.config.version == 2 else features[-1]
            features.append(stage(inputs))
        return self.up(self.fuse(torch.cat(features, dim=1)))


class SegmenterEnsemble(nn.Module):
    """The mean probability of several segmenters, returned as a logit (the paper's ensemble
    of its best v1 and v2). The members must share their input pre-processing."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0].config
        slices = max(m.config.window_slices for m in members)
        multiple = max(m.config.in_plane_multiple for m in members)
        if len({m.config.slice_mm for m in members}) > 1:
            raise ValueError("the members of an ensemble must share their slice spacing (slice_mm)")
        self.config = _EnsembleConfig(first.pixel_mm, first.hu_window, slices, slices // 2, multiple,
                                      first.threshold, first.dilation_radius, first.slice_mm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.sigmoid(m(x)) for m in self.members]).mean(0)
        return torch.logit(p, eps=1e-6)


@dataclass(frozen=True)
class _EnsembleConfig:
    pixel_mm: float
    hu_window: tuple[float, float]
    window_slices: int
    window_stride: int
    in_plane_multiple: int
    threshold: float
    dilation_radius: int
    slice_mm: float | None = None
