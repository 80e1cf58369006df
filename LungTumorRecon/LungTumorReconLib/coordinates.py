"""The one place where LPS, RAS, IJK and numpy (k, j, i) indices meet.

* Slicer's scene is RAS; files on disk (NRRD, NIfTI via ITK, DICOM, models) are LPS.
* A volume's geometry maps a continuous IJK index to LPS millimetres:
  ``lps = origin + direction @ (spacing * ijk)``.
* numpy arrays are indexed ``array[k, j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# diag(-1, -1, 1): flips the first two axes; its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Convert points (..., 3) from LPS to RAS."""
    return np.asarray(points, dtype=float) @ LPS_TO_RAS


def ras_to_lps(points: np.ndarray) -> np.ndarray:
    """Convert points (..., 3) from RAS to LPS."""
    return np.asarray(points, dtype=float) @ LPS_TO_RAS


def kji_to_ijk(index: np.ndarray) -> np.ndarray:
    """Reverse the last axis: numpy (k, j, i) order to IJK order, and back."""
    return np.asarray(index)[..., ::-1]


ijk_to_kji = kji_to_ijk


@dataclass(frozen=True)
class VolumeGeometry:
    """Geometry of a 3D image grid in LPS millimetres.

    ``size`` and ``spacing`` are in IJK order; ``direction`` holds the LPS direction of
    the I, J and K axes in its columns.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def shape_kji(self) -> tuple[int, int, int]:
        return (self.size[2], self.size[1], self.size[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def ijk_to_lps_matrix(self) -> np.ndarray:
        """4×4 homogeneous matrix from continuous IJK to LPS."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def ijk_to_ras_matrix(self) -> np.ndarray:
        """4×4 matrix from IJK to RAS, as Slicer's volume nodes store it."""
        flip = np.eye(4)
        flip[:3, :3] = LPS_TO_RAS
        return flip @ self.ijk_to_lps_matrix()

    def ijk_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction_matrix @ np.diag(self.spacing)).T + np.asarray(self.origin)

    def lps_to_ijk(self, lps: np.ndarray) -> np.ndarray:
        lps = np.asarray(lps, dtype=float) - np.asarray(self.origin)
        return lps @ np.linalg.inv(self.direction_matrix @ np.diag(self.spacing)).T

    def kji_to_lps(self, kji: np.ndarray) -> np.ndarray:
        return self.ijk_to_lps(kji_to_ijk(np.asarray(kji, dtype=float)))

    def lps_to_kji(self, lps: np.ndarray) -> np.ndarray:
        return kji_to_ijk(self.lps_to_ijk(lps))

    def contains_lps(self, lps: np.ndarray) -> bool:
        """True when the point lies inside the volume's voxels (half a voxel past the centres)."""
        ijk = self.lps_to_ijk(lps)
        return bool(np.all(ijk >= -0.5) and np.all(ijk <= np.asarray(self.size) - 0.5))

    def nearest_kji(self, lps: np.ndarray) -> tuple[int, int, int]:
        kji = np.rint(self.lps_to_kji(lps)).astype(int)
        kji = np.clip(kji, 0, np.asarray(self.shape_kji) - 1)
        return (int(kji[0]), int(kji[1]), int(kji[2]))

    def axis_of_patient(self, patient_axis: int) -> int:
        """Array axis (0=k, 1=j, 2=i) most aligned with LPS axis 0=x, 1=y, 2=z."""
        ijk_axis = int(np.argmax(np.abs(self.direction_matrix[patient_axis, :])))
        return 2 - ijk_axis

    @classmethod
    def from_sitk(cls, image) -> "VolumeGeometry":
        return cls(
            size=tuple(int(s) for s in image.GetSize()),
            spacing=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
        )

    def apply_to_sitk(self, image) -> None:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)


def check_volume(array: np.ndarray, geometry: VolumeGeometry, name: str = "hu") -> None:
    """Raise ``ValueError`` unless ``array`` is a 3D (k, j, i) array on ``geometry``'s grid,
    whose spacing is positive: the argument check of every algorithm that takes a CT."""
    shape = tuple(np.shape(array))
    if len(shape) != 3:
        raise ValueError(f"{name} must be a 3D (k, j, i) array, got {len(shape)} dimension(s)")
    if shape != tuple(int(n) for n in geometry.shape_kji):
        raise ValueError(f"{name} has shape {shape} but the geometry's grid is {tuple(geometry.shape_kji)} (k, j, i)")
    if len(geometry.spacing) != 3 or not all(float(s) > 0 for s in geometry.spacing):
        raise ValueError(f"the geometry's spacing must be three positive numbers, got {tuple(geometry.spacing)}")


def check_same_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Raise ``ValueError`` unless ``array`` (a mask) has exactly ``shape``."""
    if tuple(np.shape(array)) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(np.shape(array))}, expected {tuple(shape)}")


def check_index(index, shape: tuple[int, ...], name: str = "seed") -> None:
    """Raise ``ValueError`` unless ``index`` is one voxel index (k, j, i) inside an array of ``shape``."""
    if len(index) != len(shape):
        raise ValueError(f"{name} {tuple(index)} must have {len(shape)} indices (k, j, i)")
    if not all(0 <= int(c) < int(n) for c, n in zip(index, shape)):
        raise ValueError(f"{name} {tuple(int(c) for c in index)} lies outside the volume of shape {tuple(shape)}")


def check_spacing(spacing, ndim: int = 3, name: str = "spacing") -> None:
    """Raise ``ValueError`` unless ``spacing`` is ``ndim`` positive numbers (mm)."""
    values = np.asarray(spacing, dtype=float).ravel()
    if len(values) != ndim or not np.all(values > 0):
        raise ValueError(f"{name} must be {ndim} positive numbers (mm), got {tuple(values.tolist())}")
