"""The Slicer module's Logic on a real MRML scene.

Desktop Slicer's Qt layer (ScriptedLoadableModule base classes, parameterNodeWrapper,
slicer.i18n, slicer.app) cannot run here, so those few names are stubbed; the MRML scene,
the nodes and the library behind the Logic are the real ones from slicer-core.
"""

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

from LungTumorReconLib.pipeline.options import PipelineOptions


@pytest.fixture(scope="module")
def module():
    import slicer  # noqa: F401  (the real package first; only its Qt-bound submodules are stubbed)

    from slicer_stubs import scripted_module_stubs

    stubs = scripted_module_stubs()  # PythonQt's qt: only the Widget and its panel parts use it, not run here
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    sys.path.insert(0, str(REPO / "LungTumorRecon"))
    try:
        mod = importlib.import_module("LungTumorRecon")
        yield mod
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        # every module part imported under these stubs (another test imports them under its own)
        for name in [n for n in sys.modules if n == "LungTumorRecon" or n.startswith("LungTumorReconModule.")]:
            sys.modules.pop(name, None)


@pytest.fixture
def panel(module):
    return importlib.import_module("LungTumorReconModule.panel")


@pytest.fixture
def dependencies(module):
    return importlib.import_module("LungTumorReconModule.dependencies")


def test_logic_adapts_the_pipeline_to_mrml_nodes(module, small_case):
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.mrml.scene import Scene

    ct_path, mask_path, seeds_path, tumour, seed = small_case
    ct = read_ct(ct_path)
    scene = Scene()
    volume = scene.add_volume(ct.array, ct.geometry, "chest")
    seeds_node = scene.add_seeds([seed])
    options = PipelineOptions(tumor="none", recon="none")
    nodes = module.LungTumorReconLogic().process(volume, seeds_node, options, scene=scene)
    seg = nodes.segmentation
    assert scene.segment_names(seg) == ["right lung", "left lung"]
    masks = scene.segment_masks(seg, ct.geometry)
    assert np.array_equal(masks["right lung"], nodes.result.segments["right lung"])
    assert nodes.volume is volume  # the user's volume is used, not copied
    assert len(scene.nodes_by_class("vtkMRMLScalarVolumeNode")) == 1
    rows = Scene.table_rows(nodes.volumes_table)
    assert [r["segment"] for r in rows] == ["right lung", "left lung"]
    # a second run fills the same output segmentation node
    again = module.LungTumorReconLogic().process(volume, options=options, outputSegmentation=seg, scene=scene)
    assert again.segmentation is seg
    assert len(scene.nodes_by_class("vtkMRMLSegmentationNode")) == 1


def _finish(session, timeout: float = 300):
    """What a script does instead of the panel's QTimer: block until the child is done."""
    try:
        session.wait(timeout)
        assert session.poll().fraction == 1.0
        outcome = session.finish()
    finally:
        session.cleanup()
    assert outcome.error is None, outcome.error
    return outcome


def test_the_job_path_gives_the_blocking_result(module, small_case):
    """startStage -> wait -> applyOutcome (the panel's and a script's out-of-process path) fills
    the scene with the same segments as the blocking process()."""
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.mrml.scene import Scene

    ct_path, _, _, _, seed = small_case
    ct = read_ct(ct_path)
    scene = Scene()
    volume = scene.add_volume(ct.array, ct.geometry, "chest")
    seeds_node = scene.add_seeds([seed])
    logic = module.LungTumorReconLogic()
    options = PipelineOptions(lungs="threshold", tumor="gk", recon="mc")
    blocking = logic.process(volume, seeds_node, options, scene=scene)
    expected = scene.segment_masks(blocking.segmentation, ct.geometry)

    outcome = _finish(logic.startStage("all", volume, seeds_node, options=options, scene=scene))
    nodes = logic.applyOutcome(outcome, volume, scene=scene)
    seg = nodes.segmentation
    assert seg is not blocking.segmentation  # no output given: a new node
    got = scene.segment_masks(seg, ct.geometry)
    assert list(got) == list(expected) == ["right lung", "left lung", "tumor"]
    assert all(np.array_equal(got[name], expected[name]) for name in expected)
    assert nodes.volume is volume and nodes.model is not None and nodes.tumors_table is not None
    assert Scene.table_rows(nodes.tumors_table)[0]["volume_ml"] == pytest.approx(
        Scene.table_rows(blocking.tumors_table)[0]["volume_ml"])
    # and into the same output node again: the node is reused, not duplicated
    count = len(scene.nodes_by_class("vtkMRMLSegmentationNode"))
    outcome = _finish(logic.startStage("all", volume, seeds_node, seg, options, scene=scene))
    again = logic.applyOutcome(outcome, volume, seg, scene=scene)
    assert again.segmentation is seg
    assert len(scene.nodes_by_class("vtkMRMLSegmentationNode")) == count


def _axial_slice_node(module, geometry, k: int, sagittal: bool = False):
    """A slice node as the Red view would have it, showing slice k of the CT."""
    import slicer

    from LungTumorReconLib.coordinates import lps_to_ras

    node = slicer.vtkMRMLSliceNode()
    centre = np.array(geometry.shape_kji) // 2
    ras = lps_to_ras(geometry.kji_to_lps(np.array([k, centre[1], centre[2]], dtype=float)))
    m = node.GetSliceToRAS()
    rotation = [[0, 0, 1], [-1, 0, 0], [0, 1, 0]] if sagittal else np.eye(3)
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, float(rotation[r][c]))
        m.SetElement(r, 3, float(ras[r]))
    node.UpdateMatrices()
    return node


def test_repropagation_replaces_only_the_corrected_lung(module, panel, small_case):
    """The user cuts the right lung on the Red view's slice; "Correct on this slice and
    re-propagate" replaces the right lung from that slice and leaves the left lung's labelmap
    bit-identical."""
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.errors import InputError
    from LungTumorReconLib.mrml.scene import Scene

    ct_path, *_ = small_case
    ct = read_ct(ct_path)
    g = ct.geometry
    scene = Scene()
    volume = scene.add_volume(ct.array, g, "chest")
    logic = module.LungTumorReconLogic()
    seg = logic.process(volume, options=PipelineOptions(lungs="snake", tumor="none", recon="none"), scene=scene).segmentation
    before = scene.segment_masks(seg, g)
    k = int(np.argmax(before["right lung"].sum(axis=(1, 2))))
    corrected = before["right lung"][k].copy()
    rows = np.flatnonzero(corrected.any(axis=1))
    corrected[rows[: len(rows) // 3]] = False  # the user's edit on this slice
    edited = before["right lung"].copy()
    edited[k] = corrected
    scene.set_segmentation({"right lung": edited}, g, reference_volume=volume, node=seg)
    left_before = scene.segment_masks(seg, g)["left lung"]
    assert np.array_equal(left_before, before["left lung"])

    # the slice the Red view shows -> k, through the library
    assert panel.axialSliceIndex(volume, _axial_slice_node(module, g, k)) == k
    with pytest.raises(InputError, match="not axial"):
        panel.axialSliceIndex(volume, _axial_slice_node(module, g, k, sagittal=True))
    empty_k = int(np.flatnonzero(~before["right lung"].any(axis=(1, 2)))[0])
    with pytest.raises(InputError, match="no contour on slice"):
        logic.startStage("repropagate", volume, None, seg, correctionLung="right lung", correctionSlice=empty_k,
                         scene=scene)

    outcome = _finish(logic.startStage("repropagate", volume, None, seg, correctionLung="right lung",
                                       correctionSlice=k, scene=scene))
    nodes = logic.applyOutcome(outcome, volume, seg, scene=scene)
    assert nodes.segmentation is seg
    after = scene.segment_masks(seg, g)
    assert sorted(after) == ["left lung", "right lung"]
    assert np.array_equal(after["left lung"], left_before)  # bit-identical
    assert np.array_equal(after["right lung"][k], corrected)
    # the re-propagated lung is the one in the scene (on this small CT the snake converges back
    # to the same contours away from the corrected slice)
    assert np.array_equal(after["right lung"], nodes.result.segments["right lung"])
    assert not np.array_equal(after["right lung"], before["right lung"])
    assert nodes.result.methods["lungs"]["correction"]["slice"] == k


def test_logic_refuses_unbuilt_methods(module, chest64, monkeypatch):
    from LungTumorReconLib.pipeline import methods
    from LungTumorReconLib.errors import UnavailableError
    from LungTumorReconLib.mrml.scene import Scene

    monkeypatch.setitem(methods._NOT_YET, ("tumor", "lnhg"), "issue 99")  # as a later issue's method would be
    scene = Scene()
    volume = scene.add_volume(chest64.array, chest64.geometry)
    with pytest.raises(UnavailableError, match="not available yet") as refused:
        module.LungTumorReconLogic().process(volume, options=PipelineOptions(tumor="lnhg"), scene=scene)
    assert refused.value.option == "tumor"  # the panel names it by its control


def test_module_imports_without_the_packages_slicer_lacks():
    """In a bare Slicer, the module must load before ensurePythonDependencies() installs anything."""
    import subprocess

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('skimage', 'sklearn', 'skfuzzy', 'torch', 'monai'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(REPO / 'LungTumorRecon')!r})\n"
        "import LungTumorReconLib.pipeline.methods, LungTumorReconLib.mrml.scene, LungTumorReconLib.io.ct\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# -- desktop Slicer's start-up and first use, across Slicer versions -------------------------------
# SampleData and slicer.packaging are desktop Slicer's (Qt); these stand-ins have the API of the
# version named, read from Slicer's source (Modules/Scripted/SampleData/SampleData.py,
# Base/Python/slicer/packaging.py).


def _sample_data_module(with_category: bool):
    calls = []

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            calls.append(("source", kwargs))

    if with_category:  # Slicer >= 5.12.0
        SampleDataLogic.registerCustomSampleDataCategory = staticmethod(
            lambda category, title: calls.append(("category", {"category": category, "title": title})))
    return types.SimpleNamespace(SampleDataLogic=SampleDataLogic), calls


@pytest.mark.parametrize("with_category", [False, True], ids=["slicer-5.8-5.10", "slicer-5.12"])
def test_sample_data_is_registered_on_every_slicer(module, monkeypatch, with_category):
    fake, calls = _sample_data_module(with_category)
    monkeypatch.setitem(sys.modules, "SampleData", fake)
    importlib.import_module("LungTumorReconModule.sample_data").registerSampleData()
    kinds = [kind for kind, _ in calls]
    assert kinds == (["category", "source"] if with_category else ["source"])
    source = calls[-1][1]
    assert source["category"] == "LungTumorRecon" and source["nodeNames"] == "lung1"
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    assert Path(url2pathname(urlparse(source["uris"]).path)).is_file()


def test_declined_packages_are_one_message_on_slicer_5_12(dependencies, monkeypatch):
    """pip_ensure raises RuntimeError when the user declines; the panel shows 'not installed'."""
    asked = []

    def pip_ensure(requirements, requester=None, skip_in_testing=True, **kwargs):
        asked.append((sorted(str(r) for r in requirements), skip_in_testing))
        raise RuntimeError("User declined package installation")

    monkeypatch.setitem(sys.modules, "slicer.packaging", types.SimpleNamespace(pip_ensure=pip_ensure))
    from LungTumorReconLib.errors import UnavailableError

    with pytest.raises(UnavailableError, match=r"not installed: scikit-image>=0\.22"):
        dependencies._ensureRequirements(["scikit-image>=0.22"])
    assert asked == [(["scikit-image>=0.22"], False)]  # installs in testing mode too: the self-test needs them


def test_before_slicer_5_12_only_missing_packages_are_asked_for(dependencies, monkeypatch):
    import slicer

    monkeypatch.setitem(sys.modules, "slicer.packaging", None)  # import fails, as before 5.12
    asked, installed = [], []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, **kw: asked.append(text) or False)
    monkeypatch.setattr(slicer.util, "pip_install", installed.append, raising=False)
    dependencies._ensureRequirements(["numpy>=1.0", "scikit-image>=0.22"])  # both here: nothing asked
    assert asked == [] and installed == []
    from LungTumorReconLib.errors import UnavailableError

    with pytest.raises(UnavailableError, match="not installed: no-such-package-ltr"):
        dependencies._ensureRequirements(["numpy", "no-such-package-ltr>=1"])
    assert len(asked) == 1 and "no-such-package-ltr" in asked[0] and installed == []


def test_the_red_slice_node_is_found_without_a_red_view(panel):
    """Re-propagation reads the Red slice node from the scene; a layout without a Red view
    (no sliceWidget("Red")) is not a crash, and a scene without the node is one message."""
    import slicer

    from LungTumorReconLib.errors import InputError

    scene = slicer.vtkMRMLScene()
    with pytest.raises(InputError, match="no Red slice view"):
        panel.redSliceNode(scene)
    red = slicer.vtkMRMLSliceNode()
    red.SetLayoutName("Red")
    scene.AddNode(red)
    assert panel.redSliceNode(scene) is red


def test_the_lung_to_correct_is_found_by_name(panel, small_case):
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.errors import InputError
    from LungTumorReconLib.mrml.scene import Scene

    ct = read_ct(small_case[0])
    scene = Scene()
    lungs = {"right lung": np.zeros(ct.geometry.shape_kji, bool), "left lung": np.zeros(ct.geometry.shape_kji, bool)}
    lungs["right lung"][10:20, 10:20, 10:20] = True
    lungs["left lung"][10:20, 10:20, 30:40] = True
    seg = scene.set_segmentation(lungs, ct.geometry)
    segment_id = panel.segmentIdOf(seg, "left lung")
    assert seg.GetSegmentation().GetSegment(segment_id).GetName() == "left lung"
    with pytest.raises(InputError, match="no tumor segment"):
        panel.segmentIdOf(seg, "tumor")
    with pytest.raises(InputError, match="run the lungs first"):
        panel.segmentIdOf(None, "right lung")
