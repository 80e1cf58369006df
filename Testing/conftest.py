"""Shared fixtures: the real CT cases in ../shared/data and small volumes made from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LTR_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "LungTumorRecon"))
sys.path.insert(0, str(REPO))  # LungTumorReconDev: synthetic cases and dataset readers
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from LungTumorReconLib.io.ct import read_ct, write_image  # noqa: E402
from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json  # noqa: E402


@pytest.fixture(scope="session")
def data() -> Path:
    assert DATA.is_dir(), f"test data not found at {DATA} (../shared/data beside the checkout)"
    return DATA


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A local Orthanc PACS (see orthanc.py): ``.dimse``, ``.dicomweb``, ``.rest(path)``; skips without it."""
    from orthanc import running_orthanc

    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="session")
def chest64(data):
    """cip_chest64: a whole chest CT at about 4 mm, with a lung label map."""
    return read_ct(data / "cip_chest64" / "ct-64.nrrd")


@pytest.fixture(scope="session")
def small_case(tmp_path_factory, chest64):
    """cip_chest64 with a spherical 'tumour' placed in the right lung, and seeds for it.

    Returns (ct_path, mask_path, seeds_path, tumour mask, tumour seed).
    """
    folder = tmp_path_factory.mktemp("small_case")
    g = chest64.geometry
    lm_path = DATA / "cip_chest64" / "lm-64.nrrd"
    import SimpleITK as sitk

    lm = sitk.GetArrayFromImage(sitk.ReadImage(str(lm_path))) & 255
    right = np.isin(lm, [12, 13, 14])
    # the centre: the right lung voxel deepest inside it
    from scipy import ndimage as ndi

    depth = ndi.distance_transform_edt(right, sampling=g.spacing[::-1])
    centre = np.array(np.unravel_index(np.argmax(depth), depth.shape))
    kk, jj, ii = np.indices(g.shape_kji)
    d2 = sum(((idx - c) * s) ** 2 for idx, c, s in zip((kk, jj, ii), centre, g.spacing[::-1]))
    tumour = d2 <= 12.0**2  # 24 mm diameter
    ct = chest64.array.copy()
    ct[tumour] = 40  # soft tissue
    ct_path = folder / "ct.nrrd"
    mask_path = folder / "tumor.nrrd"
    write_image(ct, g, ct_path)
    write_image(tumour.astype(np.uint8), g, mask_path)
    seed = Seed("tumor", tuple(float(v) for v in g.kji_to_lps(centre)))
    seeds_path = folder / "seeds.mrk.json"
    import json

    seeds_path.write_text(json.dumps(seeds_to_markups_json([seed])))
    return ct_path, mask_path, seeds_path, tumour, seed


def run_training(script: str, *args: str, processes: int = 1) -> subprocess.CompletedProcess:
    """A training entry point of training/ on the CPU, alone or as ``processes`` torchrun
    processes (DistributedDataParallel over gloo), one thread each."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = [str(REPO / "training" / script), "--device", "cpu", "--threads", "1", *map(str, args)]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *argv]
    else:
        cmd = [sys.executable, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it."""
    exe = shutil.which("lungtumorrecon", path=str(Path(sys.executable).parent)) or "lungtumorrecon"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
