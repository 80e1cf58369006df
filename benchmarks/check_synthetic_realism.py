"""How close the synthetic thorax's HU are to real chest CT (run by hand).

For each real case a synthetic case is rendered on the same grid (spacing and size), and the
same regions are measured in both:

* lung: inside a lung mask (cip_chest64's label map; the synthetic truth masks), and, where a
  case has no lung mask, the air-threshold parenchyma (-1000 < HU < -500 inside the body,
  eroded) in real and synthetic alike;
* soft tissue: body voxels with -100 <= HU <= 100, eroded (fat and muscle, mediastinum, liver);
* tumour: the lung1 label against the synthetic solid tumour on lung1's grid.

Columns: voxel count, HU percentiles 5/25/50/75/95, and two noise estimates in homogeneous
tissue: ``local_sd``, the median standard deviation in 5x5 in-plane windows (all noise,
correlated or not, plus any texture), and ``diff_sd``, 1.4826 * MAD of in-plane first
differences / sqrt(2) (white-noise equivalent: low when the noise is correlated). For
synthetic cases ``truth_sd`` is the standard deviation inside the eroded aorta (the noise as
generated). Nothing here tunes the generator; it only reports.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import SimpleITK as sitk
from harness import DATA, table
from scipy import ndimage as ndi

from LungTumorReconDev.synthetic_thorax import make_thorax

PERCENTILES = (5, 25, 50, 75, 95)
COLUMNS = ["case", "region", "voxels", "p5", "p25", "p50", "p75", "p95", "local_sd", "diff_sd", "truth_sd"]


def read(path) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def body_mask(ct: np.ndarray) -> np.ndarray:
    """The patient: the largest object above -400 HU, holes (lungs, airways) filled per slice."""
    solid = ct > -400
    labels, n = ndi.label(solid)
    if n == 0:
        return solid
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == np.argmax(sizes)
    return np.stack([ndi.binary_fill_holes(s) for s in body])


def in_plane_erosion(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    return ndi.binary_erosion(mask, structure=np.ones((1, 2 * radius + 1, 2 * radius + 1), bool))


def threshold_parenchyma(ct: np.ndarray, body: np.ndarray, radius: int) -> np.ndarray:
    return in_plane_erosion((ct > -1000) & (ct < -500) & body, radius)


def soft_tissue(ct: np.ndarray, body: np.ndarray, radius: int) -> np.ndarray:
    return in_plane_erosion((ct >= -100) & (ct <= 100) & body, radius)


def noise_estimates(ct: np.ndarray, region: np.ndarray) -> tuple[float | None, float | None]:
    """Median 5x5 in-plane local SD over the region's interior, and the first-difference MAD."""
    a = ct.astype(np.float32)
    interior = in_plane_erosion(region, 2)
    if interior.sum() < 50:
        return None, None
    mean = ndi.uniform_filter(a, (1, 5, 5))
    mean_sq = ndi.uniform_filter(a * a, (1, 5, 5))
    local_sd = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    both = region[:, :, 1:] & region[:, :, :-1]
    diffs = np.diff(a, axis=2)[both]
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(np.median(local_sd[interior])), float(1.4826 * mad / np.sqrt(2.0))


def row(case: str, region_name: str, ct: np.ndarray, region: np.ndarray, noise_region=None, truth_sd=None) -> dict:
    values = ct[region]
    out = {"case": case, "region": region_name, "voxels": int(region.sum())}
    if values.size == 0:
        return out
    for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES)):
        out[f"p{p}"] = round(float(v), 1)
    if noise_region is not None:
        local_sd, diff_sd = noise_estimates(ct, noise_region)
        out["local_sd"] = None if local_sd is None else round(local_sd, 1)
        out["diff_sd"] = None if diff_sd is None else round(diff_sd, 1)
    if truth_sd is not None:
        out["truth_sd"] = round(float(truth_sd), 1)
    return out


def synthetic_on_grid(image: sitk.Image, **kwargs):
    t0 = time.perf_counter()
    case = make_thorax(size=image.GetSize(), spacing=image.GetSpacing(), **kwargs)
    seconds = time.perf_counter() - t0
    aorta = ndi.binary_erosion(case.labels["aorta"], iterations=2)
    truth_sd = float(case.ct[aorta].std()) if aorta.any() else None
    return case, truth_sd, seconds


def homogeneous_soft(ct: np.ndarray, body: np.ndarray, radius: int) -> np.ndarray:
    """Soft tissue whose 5x5 local mean is muscle/blood/liver (0..100 HU): noise without fat edges."""
    mean = ndi.uniform_filter(ct.astype(np.float32), (1, 5, 5))
    return soft_tissue(ct, body, radius) & (mean > 0) & (mean < 100)


def region_checks() -> list[dict]:
    """The regions table: lung, soft tissue and tumour HU and noise, real beside synthetic on its grid."""
    rows = []
    # cip_chest64: whole chest, 4 mm, with a lung label map
    ct, image = read(DATA / "cip_chest64" / "ct-64.nrrd")
    lm = read(DATA / "cip_chest64" / "lm-64.nrrd")[0] & 255
    lungs = np.isin(lm, [9, 10, 11, 12, 13, 14])
    body = body_mask(ct)
    rows.append(row("cip_chest64", "lung (label)", ct, lungs, in_plane_erosion(lungs, 1)))
    rows.append(row("cip_chest64", "soft tissue", ct, soft_tissue(ct, body, 1), homogeneous_soft(ct, body, 1)))
    case, truth_sd, seconds = synthetic_on_grid(image)
    syn_lungs = case.labels["right lung"] | case.labels["left lung"]
    syn_body = case.labels["body"]
    rows.append(row("synthetic@cip", "lung (truth)", case.ct, syn_lungs, in_plane_erosion(syn_lungs, 1), truth_sd))
    rows.append(
        row("synthetic@cip", "soft tissue", case.ct, soft_tissue(case.ct, syn_body, 1), homogeneous_soft(case.ct, syn_body, 1))
    )
    print(f"synthetic@cip rendered in {seconds:.1f} s", file=sys.stderr)

    # lung1 and LIDC-IDRI-0001: thin in-plane pixels, no lung mask
    cases = {
        "lung1": (DATA / "pyradiomics_lung1" / "lung1_image.nrrd", DATA / "pyradiomics_lung1" / "lung1_label.nrrd"),
        "LIDC-0001": (DATA / "lidc_idri_0001" / "LIDC-IDRI-0001_small_ct.nii.gz", None),
    }
    for name, (ct_path, label_path) in cases.items():
        ct, image = read(ct_path)
        ct = np.maximum(ct, -1024)  # LIDC pads outside the scan circle with -2048
        body = body_mask(ct)
        parenchyma = threshold_parenchyma(ct, body, 3)
        rows.append(row(name, "lung (threshold)", ct, parenchyma, parenchyma))
        rows.append(row(name, "soft tissue", ct, soft_tissue(ct, body, 3), homogeneous_soft(ct, body, 3)))
        tumors = ("solid",) if label_path is not None else ("solid", "juxta-pleural")
        case, truth_sd, seconds = synthetic_on_grid(image, tumors=tumors)
        print(f"synthetic@{name} rendered in {seconds:.1f} s", file=sys.stderr)
        syn_lungs = case.labels["right lung"] | case.labels["left lung"]
        syn_body = case.labels["body"]
        syn_parenchyma = threshold_parenchyma(case.ct, syn_body, 3)
        rows.append(row(f"synthetic@{name}", "lung (threshold)", case.ct, syn_parenchyma, syn_parenchyma, truth_sd))
        rows.append(row(f"synthetic@{name}", "lung (truth)", case.ct, syn_lungs))
        rows.append(
            row(f"synthetic@{name}", "soft tissue", case.ct, soft_tissue(case.ct, syn_body, 3), homogeneous_soft(case.ct, syn_body, 3))
        )
        if label_path is not None:
            label = read(label_path)[0] > 0
            rows.append(row(name, "tumour (label)", ct, label))
            rows.append(row(f"synthetic@{name}", "tumour (solid)", case.ct, case.labels["tumor"]))
    return rows


if __name__ == "__main__":
    main()
