"""The same input and seeds give the same segments and model, bit for bit, on CPU: each run in
its own process (as two users, or a batch re-run, would)."""

from __future__ import annotations

import numpy as np
import pytest

from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.io.seeds import read_seeds
from LungTumorReconLib.pipeline.job import PipelineJob
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.stages import plan_stage


def _run(ct, seeds, options):
    job = PipelineJob(plan_stage("all", ct, seeds, options)[0]).start()
    try:
        job.wait(600)
        assert job.error is None, job.error
        return job.result()
    finally:
        job.cleanup()


# one configuration in make test; the deep ones (the same job path, about 30 s each) in make test-long
@pytest.mark.parametrize("tumor,recon", [("gk", "gan"), pytest.param("lnhg", "interp-mc", marks=pytest.mark.long),
                                         pytest.param("r3d-dense-unet", "mc-fairing", marks=pytest.mark.long)])
def test_two_runs_in_two_processes_are_identical(small_case, tumor, recon):
    ct_path, _, seeds_path, _, _ = small_case
    ct, seeds = read_ct(ct_path), read_seeds(seeds_path)
    options = PipelineOptions(lungs="snake", tumor=tumor, recon=recon, device="cpu")
    first, second = _run(ct, seeds, options), _run(ct, seeds, options)
    assert list(first.segments) == list(second.segments) and "tumor" in first.segments
    for name in first.segments:
        assert np.array_equal(first.segments[name], second.segments[name]), name
    from vtkmodules.util.numpy_support import vtk_to_numpy

    points = [vtk_to_numpy(r.surface_lps.GetPoints().GetData()) for r in (first, second)]
    assert np.array_equal(points[0], points[1])
    assert [t.as_dict() for t in first.tumors] == [t.as_dict() for t in second.tumors]
