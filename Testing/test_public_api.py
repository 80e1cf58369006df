"""The library's public algorithm entry points and network constructors: numpydoc docstrings
(a one-line summary, Parameters, Returns, Examples), and argument checks that refuse bad input
with a one-line ValueError while valid input still runs. Tiny arrays: the file takes seconds."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.followup.growth import partial_volume_bounds, vdt_interval
from LungTumorReconLib.followup.recist import recist_response
from LungTumorReconLib.lungs.border import bridge_pleural_indentations
from LungTumorReconLib.lungs.correction import LungCorrection, apply_lung_correction
from LungTumorReconLib.lungs.resunet import segment_lungs_resunet
from LungTumorReconLib.lungs.snake import repropagate_lung, segment_lungs_snake
from LungTumorReconLib.lungs.snake_viterbi import SnakeParameters, slice_energy, viterbi_snake
from LungTumorReconLib.lungs.threshold import segment_lungs_threshold
from LungTumorReconLib.networks.dense_highres3dnet import DenseHighRes3DNet, DenseHighRes3DNetConfig
from LungTumorReconLib.networks.lnhg_wgan import LnhgGeneratorConfig, NoduleGenerator
from LungTumorReconLib.networks.nodule_detector import NoduleDetectorConfig, build_nodule_detector
from LungTumorReconLib.networks.recurrent_dense_unet import RecurrentDenseUNet, RecurrentDenseUNetConfig
from LungTumorReconLib.networks.registry import registry
from LungTumorReconLib.networks.resunet import ResUNet, ResUNetConfig
from LungTumorReconLib.networks.slice_lstm_gan import SliceLstmGan, SliceLstmGanConfig
from LungTumorReconLib.surface.gan import gan_surface
from LungTumorReconLib.surface.marching_cubes import marching_cubes_fairing_surface, marching_cubes_surface
from LungTumorReconLib.surface.reconstruction import reconstruct_surface
from LungTumorReconLib.surface.shape_interpolation import interpolation_marching_cubes_surface
from LungTumorReconLib.tumor.clustering import segment_tumor_at_seed, tumor_candidates
from LungTumorReconLib.tumor.deep import segment_tumor_deep
from LungTumorReconLib.tumor.gk import fuzzy_c_means, gustafson_kessel, k_means
from LungTumorReconLib.tumor.lungrads import lung_rads_category
from LungTumorReconLib.tumor.measurements import measure_tumor, split_tumors
from LungTumorReconLib.tumor.tubular_lobes import hessian_eigen_at, tubular_lobes

FUNCTIONS = [
    viterbi_snake, slice_energy, segment_lungs_snake, repropagate_lung, segment_lungs_threshold,
    apply_lung_correction, bridge_pleural_indentations, segment_lungs_resunet, gustafson_kessel, fuzzy_c_means,
    k_means, segment_tumor_at_seed, tumor_candidates, tubular_lobes, hessian_eigen_at, measure_tumor, split_tumors,
    segment_tumor_deep, reconstruct_surface, marching_cubes_surface, marching_cubes_fairing_surface,
    interpolation_marching_cubes_surface, gan_surface, build_nodule_detector, partial_volume_bounds, vdt_interval,
    recist_response, lung_rads_category,
]
CONSTRUCTORS = [DenseHighRes3DNet, RecurrentDenseUNet, ResUNet, NoduleGenerator, SliceLstmGan]


def _sections(obj) -> set[str]:
    """The numpydoc section titles of ``obj``'s docstring: a title line underlined by as many dashes."""
    lines = [line.strip() for line in (inspect.getdoc(obj) or "").splitlines()]
    return {title for title, underline in zip(lines, lines[1:])
            if title and re.fullmatch(r"-+", underline) and len(underline) == len(title)}


def _summary_is_one_line(obj) -> bool:
    lines = (inspect.getdoc(obj) or "").splitlines()
    return bool(lines) and bool(lines[0].strip()) and (len(lines) == 1 or not lines[1].strip())


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
def test_functions_have_numpydoc_docstrings(function):
    assert _summary_is_one_line(function), function.__name__
    assert {"Parameters", "Returns", "Examples"} <= _sections(function), _sections(function)
    assert ">>> " in inspect.getdoc(function)


@pytest.mark.parametrize("cls", CONSTRUCTORS, ids=lambda c: c.__name__)
def test_network_constructors_have_numpydoc_docstrings(cls):
    sections = _sections(cls) | _sections(cls.__init__)
    assert _summary_is_one_line(cls), cls.__name__
    assert {"Parameters", "Examples"} <= sections, sections
    assert ">>> " in (inspect.getdoc(cls) or "") + (inspect.getdoc(cls.__init__) or "")


# tiny inputs: a 4 x 8 x 8 volume of lung with a cube of tissue in it
GEOMETRY = VolumeGeometry(size=(8, 8, 4), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
HU = np.full((4, 8, 8), -850.0)
CUBE = np.zeros((4, 8, 8), dtype=bool)
CUBE[1:3, 2:6, 2:6] = True
HU[CUBE] = 40.0
FLAT_GEOMETRY = VolumeGeometry(size=(8, 8, 4), spacing=(1.0, 0.0, 2.0), origin=(0.0, 0.0, 0.0))
POINTS = np.random.default_rng(0).normal(size=(12, 2))


def _energy():
    return slice_energy(HU[1], (1.0, 1.0), SnakeParameters())


BAD_CALLS = {
    "viterbi_snake: empty points": lambda: viterbi_snake(np.zeros((0, 2)), _energy()),
    "slice_energy: a volume, not a slice": lambda: slice_energy(HU, (1.0, 1.0), SnakeParameters()),
    "segment_lungs_snake: hu not on the geometry's grid": lambda: segment_lungs_snake(HU[:, :, :7], GEOMETRY),
    "repropagate_lung: slice outside the volume": lambda: repropagate_lung(
        HU, GEOMETRY, {}, "right lung", 4, CUBE[1]),
    "segment_lungs_threshold: zero spacing": lambda: segment_lungs_threshold(HU, FLAT_GEOMETRY),
    "apply_lung_correction: mask of the wrong shape": lambda: apply_lung_correction(
        HU, GEOMETRY, {}, LungCorrection("right lung", 1, np.ones((5, 5), dtype=bool))),
    "bridge_pleural_indentations: lung mask of the wrong shape": lambda: bridge_pleural_indentations(
        {"right lung": CUBE[:3]}, HU, GEOMETRY),
    "segment_lungs_resunet: a one-channel model": lambda: segment_lungs_resunet(
        HU, GEOMETRY, ResUNet(ResUNetConfig(widths=(2, 2, 2, 2)))),
    "gustafson_kessel: n_clusters < 2": lambda: gustafson_kessel(POINTS, n_clusters=1),
    "fuzzy_c_means: fuzzifier m <= 1": lambda: fuzzy_c_means(POINTS, m=1.0),
    "k_means: 1D data": lambda: k_means(POINTS[:, 0]),
    "segment_tumor_at_seed: seed outside the volume": lambda: segment_tumor_at_seed(HU, GEOMETRY, (4, 4, 4)),
    "tumor_candidates: max_candidates < 1": lambda: tumor_candidates(HU, GEOMETRY, CUBE, max_candidates=0),
    "tubular_lobes: hu of another shape": lambda: tubular_lobes(CUBE, HU[:2], (1, 3, 3), (2.0, 1.0, 1.0)),
    "hessian_eigen_at: radius not positive": lambda: hessian_eigen_at(HU, (1, 3, 3), 0.0, (2.0, 1.0, 1.0)),
    "measure_tumor: empty mask": lambda: measure_tumor(np.zeros_like(CUBE), HU, GEOMETRY, None),
    "split_tumors: 2D mask": lambda: split_tumors(CUBE[1], GEOMETRY, []),
    "segment_tumor_deep: model without a config": lambda: segment_tumor_deep(torch.nn.Identity(), HU, GEOMETRY, []),
    "reconstruct_surface: unknown method": lambda: reconstruct_surface("poisson", CUBE, GEOMETRY),
    "marching_cubes_surface: mask not on the geometry's grid": lambda: marching_cubes_surface(CUBE[:, :7], GEOMETRY),
    "marching_cubes_fairing_surface: empty mask": lambda: marching_cubes_fairing_surface(
        np.zeros_like(CUBE), GEOMETRY),
    "interpolation_marching_cubes_surface: order 7": lambda: interpolation_marching_cubes_surface(
        CUBE, GEOMETRY, order=7),
    "gan_surface: hu of another shape": lambda: gan_surface(CUBE, GEOMETRY, HU[:2]),
    "partial_volume_bounds: mask not on the geometry's grid": lambda: partial_volume_bounds(CUBE[:, :7], GEOMETRY),
    "vdt_interval: no days between the examinations": lambda: vdt_interval(0.9, 1.1, 1.9, 2.1, 0),
    "recist_response: a negative sum": lambda: recist_response(-1.0, 2.0),
    "lung_rads_category: an unknown nodule type": lambda: lung_rads_category("glassy", 4.0),
    "DenseHighRes3DNet: stem width 0": lambda: DenseHighRes3DNet(DenseHighRes3DNetConfig(stem=0)),
    "RecurrentDenseUNet: window_slices < 1": lambda: RecurrentDenseUNet(RecurrentDenseUNetConfig(window_slices=0)),
    "ResUNet: threshold outside 0..1": lambda: ResUNet(ResUNetConfig(threshold=1.5)),
    "NoduleGenerator: a width of 0": lambda: NoduleGenerator(LnhgGeneratorConfig(widths=(8, 0, 32, 64))),
    "SliceLstmGan: three channels per slice": lambda: SliceLstmGan(SliceLstmGanConfig(slice_channels=3)),
    "build_nodule_detector: NMS overlap below 0": lambda: build_nodule_detector(NoduleDetectorConfig(nms_iou=-0.1)),
}


def test_every_function_and_constructor_has_a_bad_call():
    covered = {name.split(":")[0] for name in BAD_CALLS}
    assert covered == {f.__name__ for f in FUNCTIONS} | {c.__name__ for c in CONSTRUCTORS}


@pytest.mark.parametrize("call", list(BAD_CALLS.values()), ids=list(BAD_CALLS))
def test_bad_arguments_raise_a_one_line_value_error(call):
    with pytest.raises(ValueError) as refused:
        call()
    assert str(refused.value) and "\n" not in str(refused.value)


def test_checks_keep_valid_input():
    rng = np.random.default_rng(1)
    data = np.vstack([rng.normal(0.0, 0.2, (15, 2)), rng.normal(4.0, 0.2, (15, 2))])
    result = gustafson_kessel(data, n_clusters=2)
    assert result.centers.shape == (2, 2)
    assert sorted(np.round(result.centers[:, 0]).tolist()) == [0.0, 4.0]
    assert np.allclose(result.memberships.sum(axis=0), 1.0)
    assert len(split_tumors(CUBE, GEOMETRY, [])) == 1
    assert measure_tumor(CUBE, HU, GEOMETRY, None).voxels == int(CUBE.sum())


def test_shipped_model_configurations_pass_their_checks():
    configs = {"slice-lstm-gan": SliceLstmGanConfig, "r3d-dense-unet": RecurrentDenseUNetConfig,
               "dense-highres3dnet": DenseHighRes3DNetConfig, "resunet": ResUNetConfig,
               "lnhg-generator": LnhgGeneratorConfig, "nodule-detector": NoduleDetectorConfig}
    for name, entry in registry().items():
        if entry["architecture"] in configs:
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()}
            configs[entry["architecture"]](**fields)  # raises on a value the checks refuse
