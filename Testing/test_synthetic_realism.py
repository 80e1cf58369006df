"""The measures of benchmarks/check_synthetic_realism.py on volumes whose answer is known."""

from __future__ import annotations

import sys

import numpy as np
from conftest import REPO
from scipy import ndimage as ndi

sys.path.insert(0, str(REPO / "benchmarks"))
import check_synthetic_realism as realism  # noqa: E402

from LungTumorReconLib.coordinates import VolumeGeometry  # noqa: E402


def test_nps_of_white_noise_is_flat_and_keeps_its_std_through_a_plane():
    rng = np.random.default_rng(0)
    jj, ii = np.indices((32, 32))
    rois = [rng.normal(0.0, 10.0, (32, 32)) + 3.0 * jj - 2.0 * ii + 40.0 for _ in range(200)]
    out = realism.nps_summary(rois, (0.5, 0.5))
    assert out["rois"] == 200 and abs(out["noise_sd"] - 10.0) < 0.5
    # a flat radial profile up to Nyquist (1 cycle/mm): its NPS-weighted mean sits mid-band
    assert 0.4 < out["mean_f"] < 0.65
    smooth = realism.nps_summary([ndi.gaussian_filter(r, 1.5, mode="wrap") for r in rois], (0.5, 0.5))
    assert smooth["mean_f"] < 0.6 * out["mean_f"] and smooth["noise_sd"] < out["noise_sd"]


def test_flat_rois_keep_uniform_tissue_and_leave_out_edges():
    rng = np.random.default_rng(1)
    hu = np.full((2, 160, 160), 40.0) + rng.normal(0.0, 15.0, (2, 160, 160))
    hu[:, :, 80:] += 150.0  # an edge: muscle | dense tissue, mean still below 120 HU on the left
    hu[:, :, 80:] -= 300.0  # now fat-like -110 HU on the right
    body = np.ones(hu.shape, bool)
    rois = realism.flat_rois(hu, body, (0.7, 0.7))
    assert rois, "uniform halves give ROIs"
    assert all(r.std() < 25.0 for r in rois)  # no ROI straddles the 150 HU step


def test_depth_bands_follow_the_distance_from_the_pleura_and_gravity():
    geometry = VolumeGeometry(size=(120, 120, 3), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    lungs = np.zeros((3, 120, 120), bool)
    lungs[:, 10:110, 10:110] = True
    depth = np.stack([ndi.distance_transform_edt(s) for s in lungs])
    y = np.arange(120)[None, :, None] * np.ones((3, 1, 120))
    hu = -900.0 + depth + 0.5 * (y - 60.0)  # denser deep and posterior (LPS y grows posterior)
    out = realism.depth_row("box", hu, lungs, geometry)
    assert out["0-5 mm"] < out["5-15 mm"] < out["15-30 mm"] < out[">30 mm"]
    assert out["post-ant"] > 20.0


def test_tumour_pieces_go_to_the_nearest_tumour_and_gaps_are_computed():
    geometry = VolumeGeometry(size=(40, 40, 10), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    k, j, i = np.indices((10, 40, 40))
    mask = ((k - 5) ** 2 + (j - 10) ** 2 + (i - 10) ** 2 < 16) | ((k - 5) ** 2 + (j - 30) ** 2 + (i - 30) ** 2 < 16)
    tumors = [{"kind": "solid", "centre_lps": (10.0, 10.0, 5.0)},
              {"kind": "ground-glass", "centre_lps": (30.0, 30.0, 5.0)}]
    by_kind = realism.masks_by_kind(mask, tumors, geometry)
    assert by_kind["solid"][5, 10, 10] and not by_kind["solid"][5, 30, 30] and by_kind["ground-glass"][5, 30, 30]
    rows = [{"case": name, "mean": 30.0, "std": 50.0, "p5": -60.0, "p95": 110.0, "voxels": 10}
            for name in realism.REAL_KINDS]
    rows.append({"case": "syn", "kind": "solid", "mean": 90.0, "std": 52.0, "p5": -50.0, "p95": 120.0, "voxels": 10})
    gaps = realism.tumour_gaps(rows)
    assert len(gaps) == 1 and "lung1" in gaps[0] and "mean" in gaps[0]
