"""Recurrent 3D-DenseUNet for volumetric lung-tumour segmentation (seed paper 001: Kamal et
al., "Lung Cancer Tumor Region Segmentation Using Recurrent 3D-DenseUNet", TIA 2020, §3).

- **Encoder**: blocks of two 3×3×3 convolutions (batch norm, ReLU) whose outputs are
  concatenated with the block's input (the dense links), then 2×2 max pooling *in-plane only*
  (the slice axis keeps its 8 slices), and 10% spatial dropout.
- **Recurrent block**: ConvLSTM layers that run over the slices as time steps at the
  bottleneck's in-plane resolution.
- **Decoder**: in-plane 2×2 transposed convolutions, concatenation with the encoder's
  output at the same level (skip), and the same dense blocks; a 1×1×1 convolution gives the
  tumour logit (sigmoid at inference).

Written by hand from the paper: no library has this network or a ConvLSTM. Built from MONAI's
``Convolution`` blocks. Widths, depth and the number of ConvLSTM layers are configurable; the
paper used widths 32–256 and three ConvLSTM layers of 256; the shipped configuration is much
narrower so that it trains and runs on two CPU cores (see the model card).
``use_convlstm=False`` replaces the recurrent block by a dense block (the bench's ablation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from monai.networks.blocks import Convolution
from torch import nn

from LungTumorReconLib.networks.checks import check_positive_int, check_positive_ints, check_segmenter_settings


@dataclass(frozen=True)
class RecurrentDenseUNetConfig:
    in_channels: int = 1
    widths: tuple[int, ...] = (8, 16, 32)  # encoder levels; each pools in-plane after its block
    lstm_hidden: int = 32
    lstm_layers: int = 1
    use_convlstm: bool = True
    dropout: float = 0.1
    window_slices: int = 8  # slices per window (the paper's depth)
    pixel_mm: float = 1.25  # in-plane spacing the CT is resampled to (the paper's 256² ignored spacing)
    slice_mm: float | None = None  # slice spacing the CT is resampled to; None: the CT's own slices
    hu_window: tuple[float, float] = (-1000.0, 400.0)  # mapped to 0..1
    threshold: float = 0.7  # on the averaged probability (the paper's)
    # in-plane disk after thresholding, in model pixels. The paper's 3 (a 7×7 disk) was chosen
    # for its own model; ours is chosen on our validation chests (docs/results.md shows both)
    dilation_radius: int = 0

    def __post_init__(self) -> None:
        """Refuse impossible values (see :class:`RecurrentDenseUNet`) with a ``ValueError``."""
        for name in ("in_channels", "lstm_hidden", "lstm_layers"):
            check_positive_int(name, getattr(self, name))
        check_positive_ints("widths", self.widths)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        check_segmenter_settings(self)

    @property
    def window_stride(self) -> int:
        return 1  # the paper's: every slice is predicted by 8 windows, averaged

    @property
    def in_plane_multiple(self) -> int:
        return 2 ** len(self.widths)

    def as_dict(self) -> dict:
        return asdict(self)


class DenseBlock3D(nn.Module):
    """Two 3×3×3 conv–BN–ReLU layers; each sees the concatenation of the block input and all
    earlier outputs (DenseNet links, Huang et al. 2017); the block returns input ‖ outputs,
    and :meth:`features` also returns the last layer's output (``growth`` channels) for the skip."""

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.first = Convolution(3, in_channels, growth, act="RELU", norm="BATCH")
        self.second = Convolution(3, in_channels + growth, growth, act="RELU", norm="BATCH")
        self.out_channels = in_channels + 2 * growth

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.first(x)
        b = self.second(torch.cat([x, a], dim=1))
        return torch.cat([x, a, b], dim=1), b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


class ConvLSTM2d(nn.Module):
    """A convolutional LSTM layer (Shi et al. 2015): the LSTM's gates are 3×3 convolutions of
    the input and the previous hidden state, so the state keeps its 2D layout. Runs over the
    slice axis of a (B, C, S, H, W) tensor and returns every step's hidden state."""

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, 3, padding=1)
        self.norm = nn.BatchNorm3d(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, s, h, w = x.shape
        state = x.new_zeros(b, self.hidden, h, w)
        cell = x.new_zeros(b, self.hidden, h, w)
        outputs = []
        for t in range(s):
            i, f, o, g = self.gates(torch.cat([x[:, :, t], state], dim=1)).chunk(4, dim=1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            state = torch.sigmoid(o) * torch.tanh(cell)
            outputs.append(state)
        return self.norm(torch.stack(outputs, dim=2))


class RecurrentDenseUNet(nn.Module):
    """(B, 1, S, H, W) windows of S slices → tumour logits of the same shape.

    H and W must be multiples of 2^levels (the ConvLSTM runs at 1/2^levels in-plane).

    Parameters
    ----------
    config : RecurrentDenseUNetConfig, optional
        Input channels, the encoder's widths (one level each), the ConvLSTM's hidden channels
        and layers (or a dense block, ``use_convlstm=False``), the dropout; and the inference
        settings (slices per window, pixel size, HU window, threshold, dilation radius). The
        shipped defaults.

    Raises
    ------
    ValueError
        When the configuration is made: a channel count, width or layer count not a positive
        integer; ``dropout`` outside [0, 1); ``window_slices`` < 1; ``pixel_mm`` <= 0; an empty
        HU window; ``threshold`` outside 0..1; or ``dilation_radius`` < 0.

    Examples
    --------
    >>> net = RecurrentDenseUNet(RecurrentDenseUNetConfig(widths=(2, 4), lstm_hidden=4)).eval()
    >>> net(torch.zeros(1, 1, 8, 16, 16)).shape
    torch.Size([1, 1, 8, 16, 16])
    """

    def __init__(self, config: RecurrentDenseUNetConfig = RecurrentDenseUNetConfig()):
        super().__init__()
        self.config = config
        pool = (1, 2, 2)  # in-plane only
        self.encoder = nn.ModuleList()
        previous = config.in_channels
        for width in config.widths:
            block = DenseBlock3D(previous, width)
            self.encoder.append(block)
            previous = block.out_channels
        self.pool = nn.MaxPool3d(pool)
        self.dropout = nn.Dropout3d(config.dropout)
        if config.use_convlstm:
            layers, channels = [], previous
            for _ in range(config.lstm_layers):
                layers.append(ConvLSTM2d(channels, config.lstm_hidden))
                channels = config.lstm_hidden
            self.bottleneck = nn.Sequential(*layers)
        else:  # the ablation: a dense block of the same output width instead of the ConvLSTM
            self.bottleneck = nn.Sequential(DenseBlock3D(previous, config.lstm_hidden),
                                            Convolution(3, previous + 2 * config.lstm_hidden, config.lstm_hidden,
                                                        kernel_size=1, act="RELU", norm="BATCH"))
        previous = config.lstm_hidden
        self.decoder = nn.ModuleList()
        # the skips carry each encoder block's last convolution (as the authors' code did at
        # two of its three levels), not the whole dense concatenation: half the decoder's cost
        for width in config.widths[::-1]:
            up = Convolution(3, previous, width, strides=pool, kernel_size=pool, padding=0, output_padding=0,
                             is_transposed=True,
                             act="RELU", norm="BATCH")
            block = DenseBlock3D(2 * width, width)
            self.decoder.append(nn.ModuleDict({"up": up, "block": block}))
            previous = block.out_channels
        self.head = nn.Conv3d(previous, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x, last = block.features(x)
            skips.append(last)
            x = self.dropout(self.pool(x))
        x = self.bottleneck(x)
        for level, skip in zip(self.decoder, skips[::-1]):
            x = level["block"](torch.cat([level["up"](x), skip], dim=1))
        return self.head(x)
