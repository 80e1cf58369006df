"""Refusing a run that would exhaust the machine's memory, before it starts computing.

A run's peak resident memory is estimated from the CT's voxel count and the chosen methods:

    peak ≈ base + voxels × max(cost[lungs], cost[tumour], cost[recon])

``base`` is the interpreter and its libraries (PyTorch's when a network runs). Each method's
cost in bytes per voxel is its path's peak RSS on the 512 × 512 × 600 CT of
``benchmarks/bench_memory.py``, less the base, divided by the voxels, rounded up; the stages run
one after the other, so the costliest one sets the peak. ``make bench`` prints this estimate
beside every measured peak, and a test checks it is above a measured run.

The estimate is compared with what the machine can still give this process: MemAvailable
from /proc/meminfo, and the cgroup's limit when one is set (containers, CI, batch jobs).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from LungTumorReconLib.errors import InsufficientMemoryError
from LungTumorReconLib.pipeline import methods

GB = 1024**3
_NO_LIMIT = 2.0**60  # cgroup v1 writes "no limit" as the largest page-aligned int64
# The fixed cost of a run: the interpreter, its libraries (PyTorch, MONAI and torchvision when a
# network runs), the models, and what every run holds whatever the volume. Bench fits: 0.59-0.65
# GB without PyTorch, 1.26-1.35 GB with it.
BASE_BYTES = {False: 0.75 * GB, True: 1.45 * GB}
# Bytes per CT voxel at the path's peak: the bench's slope between 100 and 600 slices of
# 512 x 512, plus 15-20% headroom. Every path reads the CT and writes a scene bundle (a copy of
# the CT), hence the floor. A seeded deep tumour stage works in the seed's box; a seedless one
# over the lungs' box.
_FLOOR = 16.0  # threshold lungs: 13.9
LUNG_COST = {"none": _FLOOR, "threshold": _FLOOR, "snake": 27.0, "resunet": 27.0}  # snake 23.4, resunet 23.6
TUMOR_COST = {"none": _FLOOR, "gk": 27.0, "fcm": 27.0, "kmeans": 27.0,  # 22.8-22.9 (gk: in default)
              "r3d-dense-unet": 17.0, "dense-highres3dnet": 17.0, "resunet": 17.0,  # 14.2-14.8
              "lnhg": 25.0}  # 21.3
TUMOR_COST_UNSEEDED = {"gk": 27.0, "fcm": 27.0, "kmeans": 27.0,  # gk: 22.7
                       "r3d-dense-unet": 25.0, "dense-highres3dnet": 25.0, "resunet": 25.0,  # r3d 16.6
                       "lnhg": 32.0}  # 27.6
RECON_COST = {"none": _FLOOR, "mc": _FLOOR, "mc-fairing": _FLOOR, "interp-mc": _FLOOR, "gan": 25.0}  # gan with gk: 24.2


@dataclass(frozen=True)
class MemoryEstimate:
    peak_bytes: float
    available_bytes: float | None  # None: unknown (not Linux)

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.peak_bytes <= self.available_bytes


def uses_torch(lungs: str, tumor: str, recon: str) -> bool:
    return lungs in methods.DEEP_LUNG_METHODS or tumor in methods.DEEP_TUMOR_METHODS or recon == "gan"


def estimate_peak_bytes(voxels: int, lungs: str, tumor: str, recon: str, seeded: bool = True) -> float:
    """The run's estimated peak resident memory in bytes (the equation in the module docstring)."""
    tumor_cost = TUMOR_COST.get(tumor, max(TUMOR_COST.values()))
    if not seeded:
        tumor_cost = max(tumor_cost, TUMOR_COST_UNSEEDED.get(tumor, tumor_cost))
    per_voxel = max(LUNG_COST.get(lungs, max(LUNG_COST.values())), tumor_cost,
                    RECON_COST.get(recon, max(RECON_COST.values())))
    return BASE_BYTES[uses_torch(lungs, tumor, recon)] + voxels * per_voxel


def available_bytes() -> float | None:
    """What this process can still take: MemAvailable, capped by the cgroup's limit, plus the
    anonymous memory this process already holds (the estimate is of its whole peak)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(float(line.split()[1]) * 1024)
                break
    except OSError:
        return None
    cgroup = _cgroup_free_bytes()
    if cgroup is not None:
        found.append(cgroup)
    if not found:
        return None
    return min(found) + _current_rss_bytes()


def _cgroup_free_bytes(cgroup_file: Path = Path("/proc/self/cgroup"),
                       fs_root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The limit less the usage of this process's memory cgroup, when a limit is set: v2
    (memory.max, memory.current) or v1 (memory.limit_in_bytes, memory.usage_in_bytes)."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        if controllers == "":
            root, limit_name, usage_name = fs_root, "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            root, limit_name, usage_name = fs_root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        # inside a container the cgroup's own folder is often mounted as the root
        for folder in (root / relative.lstrip("/"), root):
            try:
                limit = (folder / limit_name).read_text().strip()
                usage = float((folder / usage_name).read_text().strip())
            except (OSError, ValueError):
                continue
            if limit == "max" or float(limit) >= _NO_LIMIT:
                break
            return float(limit) - usage
    return None


def _status_bytes(field: str) -> float | None:
    """A memory field of /proc/self/status (given there in kB), in bytes; None where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return float(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return None


def peak_rss_bytes() -> float:
    """This process's peak resident memory since it started its program: VmHWM. (ru_maxrss is
    not used: after a vfork + exec it keeps the parent's peak, so a child of a big process
    would report the parent's size.)"""
    peak = _status_bytes("VmHWM")
    return peak if peak is not None else float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _current_rss_bytes() -> float:
    """This process's anonymous resident memory (RssAnon). File-backed pages are left out:
    MemAvailable already counts them as reclaimable, and adding them made the sum exceed
    MemTotal."""
    anonymous = _status_bytes("RssAnon")
    return anonymous if anonymous is not None else 0.0


def check_memory(shape: tuple[int, ...], lungs: str, tumor: str, recon: str, seeded: bool = True,
                 available: float | None = None) -> MemoryEstimate:
    """Raise a one-line error when the run's estimated peak is above what the machine has free."""
    voxels = 1
    for n in shape:
        voxels *= int(n)
    estimate = MemoryEstimate(estimate_peak_bytes(voxels, lungs, tumor, recon, seeded),
                              available if available is not None else available_bytes())
    if not estimate.fits:
        size = " x ".join(str(n) for n in reversed(shape))
        raise InsufficientMemoryError(
            f"this {size} CT needs about {estimate.peak_bytes / GB:.1f} GB of memory with these methods "
            f"(lungs {lungs}, tumour {tumor}, recon {recon}), but only {estimate.available_bytes / GB:.1f} GB "
            "is free: close other programs, crop the CT, or turn the memory check off to try anyway",
            option="memory_check",
        )
    return estimate
