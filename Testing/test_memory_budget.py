"""A run that would exhaust memory is refused before it computes; the estimate it is refused
on stays above what a run really takes (measured in a child process, as bench_memory does)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from LungTumorReconLib.cli import main
from LungTumorReconLib.errors import InsufficientMemoryError
from LungTumorReconLib.io.ct import write_image
from LungTumorReconLib.pipeline import memory as memory_budget

_CHILD = ("import sys\n"
          f"sys.path.insert(0, {str(REPO / 'LungTumorRecon')!r})\n"
          "from LungTumorReconLib.cli import main\n"
          "from LungTumorReconLib.pipeline.memory import peak_rss_bytes\n"
          "code = main(sys.argv[1:])\n"
          "print('PEAK_RSS_BYTES', int(peak_rss_bytes()), file=sys.stderr)\n"
          "sys.exit(code)\n")


def test_a_run_above_free_memory_is_refused_before_any_work(small_case, tmp_path, monkeypatch, capsys):
    ct_path, _, seeds_path, _, _ = small_case
    monkeypatch.setattr(memory_budget, "available_bytes", lambda: 0.3 * memory_budget.GB)
    out = tmp_path / "out"
    code = main(["run", str(ct_path), "--seeds", str(seeds_path), "--out", str(out), "--quiet", "--recon", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and "GB of memory" in err[0] and "0.3 GB is free" in err[0]
    assert not out.exists()
    # the user can insist
    code = main(["run", str(ct_path), "--seeds", str(seeds_path), "--out", str(out), "--quiet", "--recon", "none",
                 "--skip-memory-check"])
    assert code == 0 and (out / "report.json").is_file()


def test_the_estimate_grows_with_the_volume_and_the_methods():
    small = memory_budget.estimate_peak_bytes(512 * 512 * 100, "threshold", "none", "none")
    big = memory_budget.estimate_peak_bytes(512 * 512 * 600, "threshold", "none", "none")
    deep = memory_budget.estimate_peak_bytes(512 * 512 * 100, "threshold", "lnhg", "none")
    assert small < big and small < deep
    with pytest.raises(InsufficientMemoryError, match="512 x 512 x 600 CT needs about"):
        memory_budget.check_memory((600, 512, 512), "snake", "gk", "interp-mc", available=1.0 * memory_budget.GB)
    assert memory_budget.check_memory((600, 512, 512), "snake", "gk", "interp-mc", available=64.0 * memory_budget.GB).fits


def test_free_memory_is_read_from_the_machine():
    free = memory_budget.available_bytes()
    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines())
    total = float(meminfo["MemTotal"].split()[0]) * 1024
    assert free is not None and 0 < free <= total


def _cgroup_tree(root, relative: str, files: dict[str, str]):
    folder = root / relative.lstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text + "\n")


def test_the_cgroup_limit_is_read_for_v1_and_v2(tmp_path):
    gb = memory_budget.GB
    proc = tmp_path / "cgroup"
    # v2: one unified hierarchy, "0::/path"
    proc.write_text("0::/job\n")
    _cgroup_tree(tmp_path / "v2", "/job", {"memory.max": str(8 * gb), "memory.current": str(3 * gb)})
    assert memory_budget._cgroup_free_bytes(proc, tmp_path / "v2") == 5 * gb
    _cgroup_tree(tmp_path / "v2", "/job", {"memory.max": "max", "memory.current": str(3 * gb)})
    assert memory_budget._cgroup_free_bytes(proc, tmp_path / "v2") is None
    # v1: the memory controller's own hierarchy; in a container its folder is the mount's root
    proc.write_text("9:pids:/\n4:memory:/process_api/abc\n0::/\n")
    _cgroup_tree(tmp_path / "v1", "/memory", {"memory.limit_in_bytes": str(6 * gb), "memory.usage_in_bytes": str(gb)})
    assert memory_budget._cgroup_free_bytes(proc, tmp_path / "v1") == 5 * gb
    _cgroup_tree(tmp_path / "v1", "/memory", {"memory.limit_in_bytes": "9223372036854771712",
                                              "memory.usage_in_bytes": str(gb)})
    assert memory_budget._cgroup_free_bytes(proc, tmp_path / "v1") is None
    assert memory_budget._cgroup_free_bytes(tmp_path / "missing", tmp_path / "v1") is None


@pytest.fixture(scope="module")
def big_case(tmp_path_factory, small_case):
    """The small case (cip_chest64 with a 24 mm tumour in the right lung) enlarged 4 x in-plane
    and 3 x along k: 256 x 256 x 192, 12.6 M voxels, big enough that the per-voxel costs, not
    the libraries, set the peak. The seed stays at the tumour's centre."""
    from scipy import ndimage as ndi

    from LungTumorReconLib.coordinates import VolumeGeometry
    from LungTumorReconLib.io.ct import read_ct

    ct_path, _, seeds_path, _, _ = small_case
    ct = read_ct(ct_path)
    g = ct.geometry
    array = ndi.zoom(ct.array, (3, 4, 4), order=1)
    geometry = VolumeGeometry(size=(array.shape[2], array.shape[1], array.shape[0]),
                              spacing=(g.spacing[0] / 4, g.spacing[1] / 4, g.spacing[2] / 3),
                              origin=g.origin, direction=g.direction)
    folder = tmp_path_factory.mktemp("big_case")
    write_image(array, geometry, folder / "ct.nrrd")
    return folder / "ct.nrrd", seeds_path, array.shape


@pytest.mark.slow
@pytest.mark.parametrize("methods", [["--lungs", "threshold", "--tumor", "gk", "--recon", "interp-mc"],
                                     pytest.param(["--lungs", "resunet", "--tumor", "none", "--recon", "none"],
                                                  marks=pytest.mark.long)],
                         ids=["clustering", "network"])
def test_the_estimate_is_above_a_measured_peak(big_case, tmp_path, methods):
    ct_path, seeds_path, shape = big_case
    run = subprocess.run([sys.executable, "-c", _CHILD, "run", str(ct_path), "--seeds", str(seeds_path),
                          "--out", str(tmp_path / "out"), "--quiet", *methods],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    measured = next(int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("PEAK_RSS_BYTES"))
    options = dict(zip(methods[::2], methods[1::2]))
    estimate = memory_budget.estimate_peak_bytes(int(np.prod(shape)), options["--lungs"], options["--tumor"],
                                                 options["--recon"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert ("tumor" in report["segments"]) == (options["--tumor"] != "none")  # every stage asked for ran
    print(f"{methods}: measured {measured / memory_budget.GB:.2f} GB, estimate {estimate / memory_budget.GB:.2f} GB")
    assert measured <= estimate <= 3 * measured, (measured / memory_budget.GB, estimate / memory_budget.GB)
