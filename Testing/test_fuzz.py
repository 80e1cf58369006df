"""Fuzzing the readers and the seeds parser with hypothesis: whatever the bytes, the answer is
a result or an InputError (one line, exit code 2), never another exception.

Bounded: a fixed number of examples each (derandomised, so CI sees the same ones every run);
the whole file takes well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from LungTumorReconLib.io.ct import read_ct, write_image
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.seeds import read_seeds

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_point = st.fixed_dictionaries({}, optional={
    "label": st.sampled_from(["tumor", "right lung", "left lung", "Tumour", "", "liver"]) | st.integers(),
    "position": st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=3), max_size=4) | _json,
})
_markup = st.fixed_dictionaries({}, optional={
    "coordinateSystem": st.sampled_from(["LPS", "RAS", "ras", "IJK", ""]) | _json,
    "controlPoints": st.lists(_point, max_size=4) | _json,
})
_seeds_doc = st.fixed_dictionaries({}, optional={"markups": st.lists(_markup, max_size=3) | _json}) | _json


def _read_or_refuse(read, path):
    """``read(path)``'s result, or None after checking it refused with one line."""
    try:
        return read(path)
    except InputError as exc:
        assert "\n" not in str(exc)
        return None


def _seeds_ok_or_refused(path):
    for seed in _read_or_refuse(read_seeds, path) or []:
        assert seed.label in ("tumor", "right lung", "left lung")
        assert len(seed.lps) == 3 and np.all(np.isfinite(seed.lps))


@FUZZ
@given(doc=_seeds_doc)
def test_seeds_parser_on_markups_like_json(tmp_path, doc):
    path = tmp_path / "seeds.mrk.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    _seeds_ok_or_refused(path)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_seeds_parser_on_arbitrary_bytes(tmp_path, raw):
    path = tmp_path / "seeds.mrk.json"
    path.write_bytes(raw)
    _seeds_ok_or_refused(path)


@pytest.fixture(scope="module")
def small_nrrd(tmp_path_factory, chest64):
    """A small real CT crop as raw (uncompressed) NRRD bytes: header text, then voxels."""
    import SimpleITK as sitk

    path = tmp_path_factory.mktemp("fuzz") / "small.nrrd"
    image = sitk.GetImageFromArray(chest64.array[10:14, 20:36, 20:36].copy())
    chest64.geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(path), useCompression=False)
    return path.read_bytes()


def _ct_ok_or_refused(path):
    ct = _read_or_refuse(read_ct, path)
    assert ct is None or (ct.array.ndim == 3 and np.isfinite(ct.array).all())


@FUZZ
@given(data=st.data())
def test_image_reader_on_mutated_nrrd(tmp_path, small_nrrd, data):
    raw = bytearray(small_nrrd)
    header_end = raw.index(b"\n\n") + 2
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.integers(0, header_end + 40))  # mostly the header: that is what gets parsed
        raw[where % len(raw)] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(header_end // 2, len(raw)))
    path = tmp_path / "mutated.nrrd"
    path.write_bytes(bytes(raw[:cut]))
    _ct_ok_or_refused(path)


@FUZZ
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".nrrd", ".nii", ".nii.gz", ".mha", ".mhd", ".dcm"]))
def test_image_reader_on_arbitrary_bytes(tmp_path, raw, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(raw)
    _ct_ok_or_refused(path)


@pytest.fixture(scope="module")
def dicom_slices(data):
    files = sorted((data / "lidc_idri_0001" / "dicom").iterdir())[:3]
    return [f.read_bytes() for f in files]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_dicom_reader_on_mutated_slices(tmp_path, dicom_slices, data):
    folder = tmp_path / "dicom"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for index, slice_bytes in enumerate(dicom_slices):
        raw = bytearray(slice_bytes)
        for _ in range(data.draw(st.integers(1, 4))):
            where = data.draw(st.integers(128, 2000))  # the preamble is skipped; the header follows it
            raw[where % len(raw)] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(len(raw) // 2, len(raw)))
        (folder / f"{index}.dcm").write_bytes(bytes(raw[:cut]))
    _ct_ok_or_refused(folder)


def test_fuzz_inputs_start_from_a_readable_image(tmp_path, small_nrrd, chest64):
    """The mutations above start from images the reader accepts (else they would prove nothing)."""
    (tmp_path / "ok.nrrd").write_bytes(small_nrrd)
    assert read_ct(tmp_path / "ok.nrrd").array.shape == (4, 16, 16)
    write_image(chest64.array, chest64.geometry, tmp_path / "ct.nrrd")
    assert read_ct(tmp_path / "ct.nrrd").array.shape == chest64.array.shape
