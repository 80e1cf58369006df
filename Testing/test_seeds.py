import json

import numpy as np
import pytest

from LungTumorReconLib.coordinates import lps_to_ras
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.seeds import check_seeds_in_volume, read_seeds


def _write(tmp_path, doc, name="seeds.mrk.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def _markups(points, system=None):
    m = {"type": "Fiducial", "controlPoints": [{"label": label, "position": list(pos)} for label, pos in points]}
    if system:
        m["coordinateSystem"] = system
    return {"markups": [m]}


def test_lps_and_ras_seeds_land_on_the_same_voxel(tmp_path, chest64):
    g = chest64.geometry
    kji = np.array([40, 30, 20])
    lps = g.kji_to_lps(kji)
    ras = lps_to_ras(lps)
    a = read_seeds(_write(tmp_path, _markups([("tumor", lps)], "LPS"), "a.mrk.json"))
    b = read_seeds(_write(tmp_path, _markups([("Tumor", ras)], "RAS"), "b.mrk.json"))
    c = read_seeds(_write(tmp_path, _markups([("tumour", lps)]), "c.mrk.json"))  # no system: LPS
    for seeds in (a, b, c):
        assert seeds[0].label == "tumor"
        assert g.nearest_kji(np.array(seeds[0].lps)) == tuple(kji)


def test_several_labels_and_tumours(tmp_path):
    seeds = read_seeds(
        _write(tmp_path, _markups([("right lung", (1, 2, 3)), ("left lung", (4, 5, 6)), ("tumor", (0, 0, 0)), ("tumor", (1, 1, 1))]))
    )
    assert [s.label for s in seeds] == ["right lung", "left lung", "tumor", "tumor"]


@pytest.mark.parametrize(
    "doc, match",
    [
        ("{not json", "not JSON"),
        ({"foo": 1}, "no 'markups'"),
        (_markups([("spleen", (0, 0, 0))]), "label 'spleen'"),
        (_markups([("tumor", (0, 0))]), "three numbers"),
        (_markups([("tumor", ("a", 0, 0))]), "three numbers"),
        ({"markups": [{"coordinateSystem": "XYZ", "controlPoints": []}]}, "coordinateSystem"),
    ],
)
def test_malformed_seeds_are_refused(tmp_path, doc, match):
    with pytest.raises(InputError, match=match):
        read_seeds(_write(tmp_path, doc))


def test_seed_outside_the_volume_is_refused(tmp_path, chest64):
    g = chest64.geometry
    outside = g.kji_to_lps(np.array([0, 0, -3]))
    seeds = read_seeds(_write(tmp_path, _markups([("tumor", outside)])))
    with pytest.raises(InputError, match="outside the CT"):
        check_seeds_in_volume(seeds, g, "seeds.mrk.json")
