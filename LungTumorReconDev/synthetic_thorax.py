"""Synthetic chest CT with exact truth, for tests, benchmarks and training.

:func:`make_thorax` renders a fixed adult thorax, defined by analytic shapes in millimetres,
onto any axis-aligned voxel grid, together with truth masks computed from the same shapes:

* body outline with skin, subcutaneous fat and chest-wall muscle; ribs with costal
  cartilage, sternum and a thoracic spine (vertebral bodies, discs, posterior arches);
* mediastinum: heart, aorta and great vessels, superior vena cava, pulmonary arteries,
  oesophagus, trachea splitting at the carina into the two main bronchi;
* lungs (the region inside the pleura) with domed apices, a two-domed diaphragm above the
  liver, stomach and spleen, parenchyma with a gravity gradient and a texture, pulmonary
  vessel trees that branch from the hila and the left atrium to fill the lungs (radii by
  Murray's law), and lobar/segmental bronchi beside the arteries;
* tumours of six kinds (:data:`TUMOR_KINDS`) placed at random inside the lungs, and large
  masses (:data:`MASS_KINDS`): against the chest wall (30-60 mm across) or against any pleural
  surface (20-100 mm, often with atelectasis or consolidation beside them, which is not tumour).

Coordinates are LPS (+x patient left, +y posterior, +z superior); the grid has the identity
direction, so array axes (k, j, i) run along (z, y, x). The anatomy depends neither on the
grid nor on the seed; the seed draws the vessel trees, the tumours, the parenchyma texture and
the noise. Imaging: partial volume from each shape's local signed distance and the voxel's
extent across the surface, a Gaussian point-spread of ``blur_mm``, then correlated Gaussian
noise of standard deviation ``noise_hu``.

The anatomy's constants are in :mod:`synthetic_parameters`, its shapes in
:mod:`synthetic_shapes`, :mod:`synthetic_anatomy` and :mod:`synthetic_tumors`, the imaging in
:mod:`synthetic_render`. The volume is rendered in slabs of slices, so memory stays bounded for large grids; the
result does not depend on the slab size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry

from .synthetic_anatomy import _Anatomy
from .synthetic_parameters import (  # noqa: F401  (public)
    CARINA_LPS,
    FOV_CENTRE_LPS,
    KERNELS,
    MASS_KINDS,
    NOISE_GRAIN_MM,
    TUMOR_KINDS,
)
from .synthetic_render import _Renderer
from .synthetic_tumors import FREE_TUMOR_KINDS, tumor_shape  # noqa: F401  (public)

__all__ = ["CARINA_LPS", "KERNELS", "MASS_KINDS", "TUMOR_KINDS", "ThoraxCase", "make_thorax"]


@dataclass
class ThoraxCase:
    """A synthetic chest CT and its truth.

    ``ct`` is int16 HU indexed (k, j, i); ``labels`` are bool masks on the same grid:
    ``"right lung"``, ``"left lung"`` (everything inside the pleura: parenchyma, vessels,
    intrapulmonary bronchi, tumours), ``"tumor"`` (union of all tumours, possibly empty),
    ``"airways"`` (lumen of the trachea and both main bronchi, outside the lungs), ``"body"``,
    ``"ribs"`` (rib bone, not cartilage) and ``"aorta"``. ``tumors`` holds one dict per
    tumour: ``kind``, ``centre_lps``, ``radius_mm`` (nominal), ``side`` (which lung),
    ``voxels`` (its truth voxels on this grid; 0 when outside the field of view) and
    ``volume_ml``. ``seeds`` holds an LPS point deep inside each lung present in the field of
    view (``"right lung"``, ``"left lung"``) and the centre of each tumour: ``"tumor"`` for
    the first, ``"tumor 2"``, ``"tumor 3"``... for the others (:meth:`seed_points` lists them
    all labelled ``"tumor"``, as a markups file does).
    """

    ct: np.ndarray
    geometry: VolumeGeometry
    labels: dict[str, np.ndarray]
    tumors: list[dict] = field(default_factory=list)
    seeds: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def seed_points(self) -> list[tuple[str, tuple[float, float, float]]]:
        """All seeds as (label, LPS) with the project's labels: one ``tumor`` point per tumour."""
        return [("tumor" if name.startswith("tumor") else name, lps) for name, lps in self.seeds.items()]


def make_thorax(
    size: Sequence[int] = (256, 256, 80),
    spacing: Sequence[float] = (1.4, 1.4, 4.0),
    tumors: Sequence[str] = ("solid", "juxta-pleural"),
    seed: int = 0,
    noise_hu: float = 20.0,
    blur_mm: float = 1.0,
    lungs_touch: bool = False,
    tumor_radii: Sequence[float | None] | None = None,
    noise_grain_mm: float = NOISE_GRAIN_MM,
) -> ThoraxCase:
    """Render the synthetic thorax on a grid of ``size`` (ni, nj, nk) voxels of ``spacing`` mm.

    The field of view is centred on the thorax; a smaller one crops it, a larger one adds air
    (and more body above and below). ``tumors`` lists tumour kinds from :data:`TUMOR_KINDS`
    (repeats allowed); they alternate between the lungs. ``blur_mm`` is the standard
    deviation of the Gaussian point-spread in mm, ``noise_hu`` the standard deviation of the
    noise and ``noise_grain_mm`` its in-plane correlation (a reconstruction kernel's texture,
    :data:`KERNELS`). ``tumor_radii`` gives each tumour's nominal radius in mm (None: drawn
    from its kind's range). With ``lungs_touch`` the lungs meet at an anterior junction line
    (their masks stay disjoint but touch). Deterministic for a given ``seed``.
    """
    size = tuple(int(n) for n in size)
    spacing = tuple(float(s) for s in spacing)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"size must be three positive integers, got {size}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    unknown = [k for k in tumors if k not in TUMOR_KINDS + MASS_KINDS]
    if unknown:
        raise ValueError(f"unknown tumour kind(s) {unknown}; use {TUMOR_KINDS + MASS_KINDS}")
    if noise_hu < 0 or blur_mm < 0 or noise_grain_mm <= 0:
        raise ValueError("noise_hu and blur_mm must be >= 0, noise_grain_mm > 0")
    radii = tuple(tumor_radii) if tumor_radii is not None else (None,) * len(tumors)
    if len(radii) != len(tumors) or any(r is not None and not 1.0 <= r <= 60.0 for r in radii):
        raise ValueError("tumor_radii must give one radius (1-60 mm) or None per tumour")

    if int(seed) < 0:
        raise ValueError("seed must be >= 0")

    origin = tuple(c - 0.5 * (n - 1) * s for c, n, s in zip(FOV_CENTRE_LPS, size, spacing))
    geometry = VolumeGeometry(size=size, spacing=spacing, origin=origin)
    anatomy = _Anatomy(int(seed), lungs_touch=lungs_touch, tumor_kinds=tuple(tumors), tumor_radii=radii)
    renderer = _Renderer(anatomy, geometry, seed=int(seed), noise_hu=float(noise_hu), blur_mm=float(blur_mm),
                         noise_grain_mm=float(noise_grain_mm))
    ct, labels, tumor_voxels = renderer.render()

    tumor_records = []
    seeds: dict[str, tuple[float, float, float]] = {}
    seeds.update(anatomy.lung_seeds(geometry))
    for n, tumor in enumerate(anatomy.tumors):
        centre = tuple(float(v) for v in tumor.centre)
        tumor_records.append(
            {
                "kind": tumor.kind,
                "centre_lps": centre,
                "radius_mm": float(tumor.radius),
                "side": tumor.side,
                "voxels": int(tumor_voxels[n]),
                "volume_ml": float(tumor_voxels[n] * geometry.voxel_volume_ml),
            }
        )
        seeds["tumor" if n == 0 else f"tumor {n + 1}"] = centre
    return ThoraxCase(ct=ct, geometry=geometry, labels=labels, tumors=tumor_records, seeds=seeds)


# =======================================================================================
# Analytic shapes. Each has a bounding box (lo, hi) in LPS mm and a field(x, y, z) that is
# negative inside, zero on the surface and close to the signed distance in mm nearby; x, y, z
# are broadcastable arrays (on a grid: x (1,1,nx), y (1,ny,1), z (nz,1,1)).


