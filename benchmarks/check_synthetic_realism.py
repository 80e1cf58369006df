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
generated).

Then, against the real cases of ``tumor_datasets.read_real_case`` (lung1, LIDC-IDRI-0001, the
IBSI crop) and synthetic cases from ``real_like_synthetic_case`` (seeds 9201-9206, which no
training run or bench uses) and ``make_thorax`` (one case per tumour kind, each kernel):

1. tumour HU: mean, std and 5/50/95th percentiles inside the tumour eroded by one voxel
   in-plane, real labels against the synthetic tumours by kind;
2. lung HU by depth: median parenchyma HU (lung mask and HU < -500) in bands of in-plane
   distance from the pleura and in the anterior and posterior thirds (real lungs from the
   project's snake segmentation, synthetic from the truth);
3. noise power spectrum: radially averaged 2D NPS of plane-detrended 32 x 32 ROIs of flat
   soft tissue; noise std, peak and mean frequency (cycles/mm), real against each kernel
   rendered at the real pixel sizes;
4. "Gaps that remain": every measure where synthetic is off real by more than ``HU_GAP`` HU
   (levels) or ``REL_GAP`` (spreads, frequencies), computed from the tables.

Nothing here tunes the generator; it only reports. Markdown on stdout, about 2-3 minutes on
one core: ``python benchmarks/check_synthetic_realism.py > realism.md``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import SimpleITK as sitk
from harness import DATA, table
from scipy import ndimage as ndi

from LungTumorReconDev.synthetic_parameters import KERNELS, MASS_KINDS, TUMOR_KINDS
from LungTumorReconDev.synthetic_thorax import make_thorax
from LungTumorReconDev.tumor_datasets import FIELD_OF_VIEW_MM, REAL_CASES, read_real_case, real_like_synthetic_case
from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.lungs.snake import segment_lungs_snake

PERCENTILES = (5, 25, 50, 75, 95)
COLUMNS = ["case", "region", "voxels", "p5", "p25", "p50", "p75", "p95", "local_sd", "diff_sd", "truth_sd"]
SEEDS = tuple(range(9201, 9207))  # real-like cases no training run or bench uses
HU_GAP, REL_GAP = 30.0, 0.30  # a "gap": synthetic off real by more than this (HU levels; spreads, frequencies)
TUMOUR_PERCENTILES = (5, 50, 95)
TUMOUR_COLUMNS = ["voxels", "mean", "std", "p5", "p50", "p95"]
# The synthetic kinds each real tumour resembles (LIDC-IDRI-0001: a 3 cm spiculated mass at
# the pleura, which the generator draws as attached-mass above 30 mm).
REAL_KINDS = {"lung1": ("solid",), "LIDC-IDRI-0001": ("spiculated", "juxta-pleural", "attached-mass"),
              "IBSI GTV": ("attached-mass", "pleural-mass")}
DEPTH_BANDS_MM = ((0.0, 5.0), (5.0, 15.0), (15.0, 30.0), (30.0, np.inf))
ROI = 32
NPS_COLUMNS = ["case", "kernel", "pixel_mm", "slice_mm", "rois", "noise_sd", "peak_f", "mean_f"]


def read(path) -> tuple[np.ndarray, sitk.Image]:
    """The image's array (k, j, i) and the SimpleITK image (its grid)."""
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
    """A regions-table row: voxels, HU percentiles and, given a noise region, the noise estimates."""
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
    """make_thorax on the image's grid; the noise as generated (aorta std) and the render time."""
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


# --- 1. tumour HU ------------------------------------------------------------------------

def hu_summary(values: np.ndarray) -> dict:
    """Voxel count, mean, standard deviation and 5/50/95th percentiles of ``values`` (HU)."""
    out = {"voxels": int(values.size)}
    if values.size == 0:
        return out
    out.update(mean=round(float(values.mean()), 1), std=round(float(values.std()), 1))
    for p, v in zip(TUMOUR_PERCENTILES, np.percentile(values, TUMOUR_PERCENTILES)):
        out[f"p{p}"] = round(float(v), 1)
    return out


def tumour_interior(hu: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """HU inside ``mask`` eroded by one voxel in-plane: the border's partial volume with lung
    is left out. In-plane only, because slices are up to 5 mm thick and a 3D erosion would
    strip whole slices from a small nodule."""
    return hu[in_plane_erosion(mask, 1)].astype(np.float32)


def masks_by_kind(mask: np.ndarray, tumors: list[dict], geometry: VolumeGeometry) -> dict[str, np.ndarray]:
    """The union tumour label split by kind: each connected piece goes to the tumour whose
    centre is nearest its centroid (a spicule cut off on a slice still finds its nodule)."""
    pieces, n = ndi.label(mask)
    if n == 0 or not tumors:
        return {}
    centres = np.array([geometry.lps_to_kji(np.asarray(t["centre_lps"], float)) for t in tumors])
    scale = np.asarray(geometry.spacing[::-1], float)  # voxels to mm, (k, j, i)
    out: dict[str, np.ndarray] = {}
    for label, centroid in enumerate(ndi.center_of_mass(mask, pieces, range(1, n + 1)), start=1):
        nearest = int(np.argmin(np.linalg.norm((centres - np.asarray(centroid)) * scale, axis=1)))
        kind = tumors[nearest]["kind"]
        out.setdefault(kind, np.zeros_like(mask))
        out[kind] |= pieces == label
    return out


def kind_cases() -> dict[str, list[np.ndarray]]:
    """Tumour interiors of one make_thorax case per kind (standard kernel, mid noise), radii set
    so that every kind keeps an interior after the erosion."""
    values: dict[str, list[np.ndarray]] = {}
    kernel = KERNELS["standard"]
    for kind in TUMOR_KINDS + MASS_KINDS:
        radius = 25.0 if kind in MASS_KINDS else 10.0
        case = make_thorax(size=(384, 384, 88), spacing=(0.78, 0.78, 2.5), tumors=(kind,), seed=SEEDS[0],
                           tumor_radii=(radius,), noise_hu=float(np.mean(kernel["noise_hu"])),
                           blur_mm=kernel["blur_mm"], noise_grain_mm=kernel["grain_mm"])
        for k, m in masks_by_kind(case.labels["tumor"], case.tumors, case.geometry).items():
            values.setdefault(k, []).append(tumour_interior(case.ct, m))
    return values


def tumour_rows(real: dict, real_like: dict[str, list[np.ndarray]], kinds: dict[str, list[np.ndarray]]) -> list[dict]:
    """One row per real tumour label, then per synthetic source and kind (interiors pooled)."""
    rows = [{"case": name, "kind": "label", "tumours": 1, **hu_summary(tumour_interior(c.hu, c.mask))}
            for name, c in real.items()]
    for source, by_kind in ((f"real-like #{SEEDS[0]}-{SEEDS[-1]}", real_like), ("make_thorax", kinds)):
        for kind in sorted(by_kind):
            rows.append({"case": source, "kind": kind, "tumours": len(by_kind[kind]),
                         **hu_summary(np.concatenate(by_kind[kind]))})
    return rows


def tumour_gaps(rows: list[dict]) -> list[str]:
    """Each real tumour against the synthetic kinds it resembles, both sources pooled."""
    gaps = []
    for row_ in rows[:len(REAL_KINDS)]:
        kinds = REAL_KINDS[row_["case"]]
        syn = [r for r in rows[len(REAL_KINDS):] if r["kind"] in kinds and r.get("mean") is not None]
        if not syn or row_.get("mean") is None:
            continue
        weights = np.array([r["voxels"] for r in syn], float)
        pooled = {key: float(np.average([r[key] for r in syn], weights=weights))
                  for key in ("mean", "std", "p5", "p95")}
        what = f"tumour HU, {row_['case']} vs synthetic {'/'.join(kinds)}"
        for key in ("mean", "p5", "p95"):
            if abs(pooled[key] - row_[key]) > HU_GAP:
                gaps.append(f"{what}: {key} {row_[key]:.0f} real vs {pooled[key]:.0f} HU synthetic")
        if abs(pooled["std"] - row_["std"]) > REL_GAP * row_["std"]:
            gaps.append(f"{what}: spread (std) {row_['std']:.0f} real vs {pooled['std']:.0f} HU synthetic")
    return gaps


# --- 2. lung HU by depth -------------------------------------------------------------------

def depth_row(name: str, hu: np.ndarray, lungs: np.ndarray, geometry: VolumeGeometry) -> dict:
    """Median parenchyma HU (lung voxels below -500 HU: vessels and nodules left out) in bands
    of in-plane distance from the pleura, and in the anterior and posterior thirds of the
    lungs' extent (supine: posterior is dependent). The distance is in-plane because a cropped
    scan's first and last slices are no pleura."""
    sj, si = geometry.spacing[1], geometry.spacing[0]
    depth = np.zeros(lungs.shape, np.float32)
    for k in np.flatnonzero(lungs.any(axis=(1, 2))):
        depth[k] = ndi.distance_transform_edt(lungs[k], sampling=(sj, si))
    parenchyma = lungs & (hu < -500)
    out = {"case": name, "voxels": int(parenchyma.sum())}
    for lo, hi in DEPTH_BANDS_MM:
        band = parenchyma & (depth > lo) & (depth <= hi)
        key = f"{lo:g}-{hi:g} mm" if np.isfinite(hi) else f">{lo:g} mm"
        out[key] = round(float(np.median(hu[band])), 1) if band.sum() > 100 else None
    nj, ni = lungs.shape[1:]
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), np.zeros(ii.size)], axis=1).astype(float)
    y = geometry.ijk_to_lps(ijk)[:, 1].reshape(nj, ni)  # LPS: y grows posterior
    y_lung = np.broadcast_to(y, lungs.shape)[lungs]
    lo, hi = np.percentile(y_lung, [0.5, 99.5])
    for key, band in (("anterior", y < lo + (hi - lo) / 3), ("posterior", y > hi - (hi - lo) / 3)):
        out[key] = round(float(np.median(hu[parenchyma & band[None]])), 1)
    out["post-ant"] = round(out["posterior"] - out["anterior"], 1)
    return out


def depth_gaps(rows: list[dict], n_real: int) -> list[str]:
    """Median of the real rows against the median of the synthetic rows, column by column (the
    median: one real lung with disease, IBSI's consolidated posterior base, would move a mean)."""
    gaps = []
    keys = [k for k in rows[0] if k not in ("case", "voxels")]
    for key in keys:
        real = [r[key] for r in rows[:n_real] if r.get(key) is not None]
        syn = [r[key] for r in rows[n_real:] if r.get(key) is not None]
        if real and syn and abs(np.median(real) - np.median(syn)) > HU_GAP:
            label = "posterior minus anterior (gravity)" if key == "post-ant" else key
            gaps.append(f"lung parenchyma median HU, {label}: {np.median(real):.0f} real"
                        f" vs {np.median(syn):.0f} HU synthetic (medians over cases)")
    return gaps


# --- 3. noise power spectrum -------------------------------------------------------------

def window_sums(a: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``a`` over every n x n window, indexed by the window's first row and column."""
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    c[1:, 1:] = a.cumsum(0).cumsum(1)
    return c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]


def window_stats(a: np.ndarray, body: np.ndarray, sigma: list[float], n: int) -> tuple[np.ndarray, ...]:
    """Per n x n window of one slice: whether it is a soft-tissue candidate (inside the body, no
    voxel below -300 or above 300 HU, mean -150..120 HU: fat to enhanced blood), the std of the
    image minus its Gaussian smoothing (noise and fine texture) and the std of the smoothed
    image (anatomy: edges, gradients)."""
    area = float(n * n)

    def sd(x):
        m = window_sums(x, n) / area
        return np.sqrt(np.maximum(window_sums(x * x, n) / area - m * m, 0.0)), m

    ok = window_sums(body.astype(float), n) == area
    ok &= window_sums(((a < -300) | (a > 300)).astype(float), n) == 0
    mean = sd(a)[1]
    ok &= (mean > -150) & (mean < 120)
    smooth = ndi.gaussian_filter(a, sigma)
    return ok, sd(a - smooth)[0], sd(smooth)[0]


def flat_rois(hu: np.ndarray, body: np.ndarray, spacing_ji: tuple[float, float], n: int = ROI,
              max_rois: int = 400) -> list[np.ndarray]:
    """n x n ROIs of flat soft tissue on up to 16 slices (stride n/2).

    The scan's noise floor is the 2nd percentile, over all candidate windows, of the std of
    image minus 6 mm smoothed image (so low because in real CT most windows hold fat septa,
    vessels or edges: lung1's fat has 15-40 HU of fine texture over 5-6 HU of noise). Kept:
    windows whose fine part is no rougher than 1.5 x that (no fine texture: fat septa, muscle
    fibres) and whose smoothed part varies by < 1.5 HU + 0.3 x that (no anatomy: smoothing
    keeps 3-16 % of the noise, white to 1 mm grain). Limits relative to the noise keep the same
    share of anatomy out of quiet and noisy scans alike; the price is that real noise is
    measured where the scan is quietest (muscle, blood), not in fat.
    """
    sigma = [6.0 / s for s in spacing_ji]
    slices = [k for k in np.unique(np.linspace(0, hu.shape[0] - 1, 16).astype(int)) if body[k].sum() >= n * n]
    stats = {k: window_stats(hu[k].astype(np.float64), body[k], sigma, n) for k in slices}
    fine = np.concatenate([s[1][s[0]] for s in stats.values()] or [np.zeros(0)])
    if fine.size == 0:
        return []
    noise = float(np.percentile(fine, 2))
    rois = []
    for k, (ok, fine_sd, smooth_sd) in stats.items():
        keep = ok & (fine_sd < 1.5 * noise) & (smooth_sd < 1.5 + 0.3 * noise)
        for j, i in zip(*np.nonzero(keep)):
            if j % (n // 2) == 0 and i % (n // 2) == 0:
                rois.append(hu[k, j:j + n, i:i + n].astype(np.float64))
    step = max(1, len(rois) // max_rois)
    return rois[::step][:max_rois]


def detrend(roi: np.ndarray) -> np.ndarray:
    """The ROI less its least-squares plane (slow shading is not noise)."""
    jj, ii = np.indices(roi.shape)
    design = np.stack([np.ones(roi.size), jj.ravel(), ii.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(design, roi.ravel(), rcond=None)
    return roi - (design @ coef).reshape(roi.shape)


def nps_summary(rois: list[np.ndarray], spacing_ji: tuple[float, float]) -> dict:
    """Noise std and the radially averaged 2D NPS's peak and mean frequency (cycles/mm).

    NPS(u, v) = dx dy / (Nx Ny) |DFT(detrended ROI)|^2, averaged over ROIs; radial bins one
    frequency step wide up to Nyquist; the mean frequency is the NPS-weighted mean of the
    radial profile."""
    if not rois:
        return {"rois": 0}
    dj, di = spacing_ji
    n_j, n_i = rois[0].shape
    residuals = [detrend(r) for r in rois]
    nps = np.mean([np.abs(np.fft.fft2(r)) ** 2 for r in residuals], axis=0) * dj * di / (n_j * n_i)
    fj, fi = np.meshgrid(np.fft.fftfreq(n_j, dj), np.fft.fftfreq(n_i, di), indexing="ij")
    f = np.hypot(fj, fi)
    step = 1.0 / (n_i * max(dj, di))
    nyquist = 0.5 / max(dj, di)
    bins = np.rint(f / step).astype(int)
    keep = (bins > 0) & (f <= nyquist)
    counts = np.bincount(bins[keep])
    radial = np.bincount(bins[keep], weights=nps[keep]) / np.maximum(counts, 1)
    freqs = np.arange(radial.size) * step
    valid = counts > 0
    return {"rois": len(rois), "noise_sd": round(float(np.sqrt(np.mean([r.var() for r in residuals]))), 1),
            "peak_f": round(float(freqs[valid][np.argmax(radial[valid])]), 3),
            "mean_f": round(float(np.sum(freqs[valid] * radial[valid]) / np.sum(radial[valid])), 3)}


def nps_row(name: str, hu: np.ndarray, geometry: VolumeGeometry, kernel: str = "") -> dict:
    """NPS summary of one CT's flat soft-tissue ROIs (the body from :func:`body_mask`, alike in
    real and synthetic)."""
    spacing_ji = (geometry.spacing[1], geometry.spacing[0])
    rois = flat_rois(hu, body_mask(hu), spacing_ji)
    return {"case": name, "kernel": kernel, "pixel_mm": round(float(geometry.spacing[0]), 3),
            "slice_mm": round(float(geometry.spacing[2]), 3), **nps_summary(rois, spacing_ji)}


def kernel_nps_rows(pixels: list[float]) -> list[dict]:
    """Each kernel at each real pixel size, noise at the middle of its range, on 16 slices."""
    rows = []
    for pixel in pixels:
        for name in ("sharp", "standard", "smooth"):
            kernel = KERNELS[name]
            n = int(FIELD_OF_VIEW_MM[0] / pixel) // 8 * 8
            case = make_thorax(size=(n, n, 16), spacing=(pixel, pixel, 2.5), tumors=(), seed=SEEDS[0],
                               noise_hu=float(np.mean(kernel["noise_hu"])), blur_mm=kernel["blur_mm"],
                               noise_grain_mm=kernel["grain_mm"])
            rows.append(nps_row(f"make_thorax {pixel:.2f} mm", case.ct, case.geometry, name))
    return rows


def nps_gaps(real_rows: list[dict], kernel_rows: list[dict]) -> list[str]:
    """Each real CT against the kernel at its pixel size whose mean frequency is nearest; its
    noise against that kernel's noise range (the measured std scaled by the range's ends).
    Frequencies one radial bin (1 / ROI width) apart are not resolved: no gap below 1.5 bins."""
    gaps = []
    for real in real_rows:
        same = [r for r in kernel_rows if r["pixel_mm"] == real["pixel_mm"] and r.get("rois")]
        if not same or not real.get("rois"):
            continue
        near = min(same, key=lambda r: abs(r["mean_f"] - real["mean_f"]))
        what = f"noise of {real['case']} vs the nearest synthetic kernel ({near['kernel']})"
        for key, label in (("mean_f", "mean frequency"), ("peak_f", "peak frequency")):
            if abs(near[key] - real[key]) > max(REL_GAP * real[key], 1.5 / (ROI * real["pixel_mm"])):
                gaps.append(f"{what}: NPS {label} {real[key]:.2f} real vs {near[key]:.2f} cycles/mm synthetic")
        lo, hi = KERNELS[near["kernel"]]["noise_hu"]
        scale = near["noise_sd"] / np.mean((lo, hi))
        lo, hi = lo * scale, hi * scale
        if not (1 - REL_GAP) * lo <= real["noise_sd"] <= (1 + REL_GAP) * hi:
            gaps.append(f"{what}: noise std {real['noise_sd']:.0f} HU real ({real['slice_mm']:g} mm slices),"
                        f" synthetic range {lo:.0f}-{hi:.0f} HU at any slice thickness")
    return gaps


# --- the run -------------------------------------------------------------------------------

def real_cases() -> tuple[dict, dict]:
    """The real cases (HU floored at -1024: LIDC pads outside the scan circle with -2048) and
    their lungs by the project's snake segmentation."""
    cases, lungs = {}, {}
    for name in REAL_CASES:
        case = read_real_case(name, DATA)
        case.hu = np.maximum(case.hu, -1024)
        cases[name] = case
        found = segment_lungs_snake(case.hu, case.geometry)
        lungs[name] = np.logical_or.reduce(list(found.values())) if found else np.zeros_like(case.mask)
    return cases, lungs


def real_like_measures() -> tuple[dict[str, list[np.ndarray]], list[dict], list[dict]]:
    """Tumour interiors by kind, depth rows and NPS rows of the real-like cases (seeds unused by
    training and benches), one case in memory at a time."""
    by_kind: dict[str, list[np.ndarray]] = {}
    depth, nps = [], []
    for seed in SEEDS:
        t0 = time.perf_counter()
        case = real_like_synthetic_case(seed)
        for kind, mask in masks_by_kind(case.mask, case.tumors, case.geometry).items():
            by_kind.setdefault(kind, []).append(tumour_interior(case.hu, mask))
        label = f"#{seed} {case.geometry.spacing[2]:g} mm slices"
        depth.append(depth_row(label, case.hu, case.lungs, case.geometry))
        nps.append(nps_row(f"real-like #{seed}", case.hu, case.geometry, case.name.split(", ")[-1].split(" #")[0]))
        print(f"{case.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        del case
    return by_kind, depth, nps


def main() -> None:
    """Print the four sections as markdown (stdout) and the render times (stderr)."""
    t_start = time.perf_counter()
    print("# Synthetic vs real chest CT\n\n## Regions on matching grids\n")
    print(table(region_checks(), COLUMNS))
    real, real_lungs = real_cases()
    real_like, syn_depth, syn_nps = real_like_measures()
    kinds = kind_cases()

    print("\n## Tumour HU (interior: the label eroded by one voxel in-plane)\n")
    rows = tumour_rows(real, real_like, kinds)
    print(table(rows, ["case", "kind", "tumours", *TUMOUR_COLUMNS]))
    gaps = tumour_gaps(rows)

    print("\n## Lung parenchyma median HU by depth from the pleura and by gravity\n")
    rows = [depth_row(name, c.hu, real_lungs[name], c.geometry) for name, c in real.items()] + syn_depth
    print(table(rows, list(rows[0])))
    gaps += depth_gaps(rows, len(real))

    print("\n## Noise power spectrum of flat soft tissue (32 x 32 ROIs, plane-detrended)\n")
    real_nps = [nps_row(name, c.hu, c.geometry) for name, c in real.items()]
    kernel_rows = kernel_nps_rows(sorted({r["pixel_mm"] for r in real_nps}))
    print(table(real_nps + kernel_rows + syn_nps, NPS_COLUMNS))
    gaps += nps_gaps(real_nps, kernel_rows)

    print(f"\n## Gaps that remain (synthetic off real by > {HU_GAP:g} HU or > {REL_GAP:.0%})\n")
    print("\n".join(f"- {g}" for g in gaps) if gaps else "- none")
    print(f"\n(run time {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
