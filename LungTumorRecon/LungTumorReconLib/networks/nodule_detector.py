"""LNHG's second branch: a Faster R-CNN nodule detector with the GIoU box loss (seed paper 002,
§II-B/C and §III; Ren et al. 2015; Rezatofighi et al. 2019).

torchvision's ``FasterRCNN`` on the first two stages of a torchvision ResNet-18 (stride 8,
128 channels; no pretrained weights: none can be downloaded here) with a 256-wide box head,
which runs a slice in a fraction of a second on two CPU cores (the authors' ResNet-50 with
RoI pooling 14×14 takes seconds), with three changes:

- **GIoU loss on decoded boxes**: the box head's regression is decoded against its proposals
  and compared with the matched true boxes by ``1 − GIoU`` (torchvision
  ``generalized_box_iou_loss``), in place of smooth L1 on the encoded offsets. (The authors'
  code applied GIoU to the encoded offsets, which are not boxes.)
- **Anchors for nodules**: ``anchor_sizes`` in model pixels, on the one feature map. The
  paper's 32–128 px at 512² (about 22–90 mm) become 8–128 px at 1.25 mm (10–160 mm), so
  that 8 mm synthetic nodules and 100 mm masses both have an anchor.
- **Native pixel size**: images are not rescaled (torchvision's transform would resize them
  to 800 px), so a pixel is always ``pixel_mm``.

Input: the three consecutive slices around each slice as the image's three channels, HU
windowed to 0..1 (the generator's window). One class: nodule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, generalized_box_iou_loss

from LungTumorReconLib.networks.checks import (
    check_fraction,
    check_hu_window,
    check_positive,
    check_positive_int,
    check_positive_ints,
)


@dataclass(frozen=True)
class NoduleDetectorConfig:
    anchor_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)  # px at pixel_mm
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # the paper's
    pixel_mm: float = 1.25
    slice_mm: float | None = None  # slice spacing the CT is resampled to; None: the CT's own slices
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    score_threshold: float = 0.5  # the authors' confidence
    nms_iou: float = 0.3  # the authors' NMS at inference
    box_head_width: int = 256

    def __post_init__(self) -> None:
        """Refuse impossible values (see :func:`build_nodule_detector`) with a ``ValueError``."""
        check_positive_ints("anchor_sizes", self.anchor_sizes)
        if not self.aspect_ratios or not all(r > 0 for r in self.aspect_ratios):
            raise ValueError(f"aspect_ratios must be one or more positive numbers, got {tuple(self.aspect_ratios)}")
        check_positive("pixel_mm", self.pixel_mm)
        if self.slice_mm is not None:
            check_positive("slice_mm", self.slice_mm)
        check_hu_window(self.hu_window)
        check_fraction("score_threshold", self.score_threshold)
        check_fraction("nms_iou", self.nms_iou)
        check_positive_int("box_head_width", self.box_head_width)

    def as_dict(self) -> dict:
        return asdict(self)


class GIoURoIHeads(RoIHeads):
    """torchvision's box head, trained with 1 − GIoU on decoded boxes instead of smooth L1."""

    def forward(self, features, proposals, image_shapes, targets=None):
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        proposals, _, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        labels = torch.cat(labels)
        loss_classifier = torch.nn.functional.cross_entropy(class_logits, labels)
        positive = torch.where(labels > 0)[0]
        if positive.numel() == 0:
            return [], {"loss_classifier": loss_classifier, "loss_box_reg": box_regression.sum() * 0.0}
        boxes = torch.cat(proposals)[positive]
        deltas = box_regression.reshape(labels.numel(), -1, 4)[positive, labels[positive]]
        predicted = self.box_coder.decode_single(deltas, boxes)
        truth = self.box_coder.decode_single(torch.cat(regression_targets)[positive], boxes)  # the matched boxes
        loss_box = generalized_box_iou_loss(predicted, truth, reduction="sum") / labels.numel()
        return [], {"loss_classifier": loss_classifier, "loss_box_reg": loss_box}


class NativeSizeTransform(GeneralizedRCNNTransform):
    """Batching and normalisation without torchvision's resize: one pixel stays ``pixel_mm``."""

    def resize(self, image, target=None):
        return image, target


def build_nodule_detector(config: NoduleDetectorConfig | None = None) -> FasterRCNN:
    """The LNHG nodule detector: torchvision's Faster R-CNN with the changes of the module's docstring.

    Parameters
    ----------
    config : NoduleDetectorConfig, optional
        Anchor sizes (model pixels) and aspect ratios, pixel size, HU window, the score
        threshold and NMS overlap at inference, and the box head's width. The shipped defaults.

    Returns
    -------
    FasterRCNN
        The untrained detector (two classes: background, nodule), with ``config`` attached.
        In eval mode it maps a list of (3, H, W) images in 0..1 to one dict of ``boxes``,
        ``labels`` and ``scores`` per image.

    Raises
    ------
    ValueError
        When the configuration is made: an anchor size or the box head's width not a positive
        integer, an aspect ratio or ``pixel_mm`` not positive, an empty HU window, or
        ``score_threshold`` or ``nms_iou`` outside 0..1.

    Examples
    --------
    >>> model = build_nodule_detector(NoduleDetectorConfig(box_head_width=16)).eval()
    >>> with torch.no_grad():
    ...     detections = model([torch.zeros(3, 32, 32)])
    >>> sorted(detections[0])
    ['boxes', 'labels', 'scores']
    """
    config = config or NoduleDetectorConfig()
    trunk = resnet18(weights=None)
    backbone = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2)
    backbone.out_channels = 128
    anchors = AnchorGenerator(sizes=(tuple(config.anchor_sizes),), aspect_ratios=(tuple(config.aspect_ratios),))
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    model = FasterRCNN(backbone, num_classes=None, rpn_anchor_generator=anchors, box_roi_pool=pool,
                       box_head=TwoMLPHead(128 * 7 * 7, config.box_head_width),
                       box_predictor=FastRCNNPredictor(config.box_head_width, 2),  # background, nodule
                       rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=300,
                       rpn_pre_nms_top_n_test=500, rpn_post_nms_top_n_test=100,
                       box_score_thresh=config.score_threshold, box_nms_thresh=config.nms_iou)
    heads = model.roi_heads
    model.roi_heads = GIoURoIHeads(
        heads.box_roi_pool, heads.box_head, heads.box_predictor,
        fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=128, positive_fraction=0.25,  # 128 RoIs (the authors')
        bbox_reg_weights=None, score_thresh=config.score_threshold, nms_thresh=config.nms_iou, detections_per_img=20)
    model.transform = NativeSizeTransform(min_size=1, max_size=1, image_mean=[0.5, 0.5, 0.5],
                                          image_std=[0.25, 0.25, 0.25], size_divisible=8)
    model.config = config
    return model
