"""The Slicer module's Logic on a real MRML scene.

Desktop Slicer's Qt layer (ScriptedLoadableModule base classes, parameterNodeWrapper,
slicer.i18n, slicer.app) cannot run here, so those few names are stubbed; the MRML scene,
the nodes and the library behind the Logic are the real ones from slicer-core.
"""

import importlib
import sys
import types

import numpy as np
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def module():
    import slicer  # noqa: F401  (the real package first; only its Qt-bound submodules are stubbed)

    stubs = {}

    class _Base:
        def __init__(self, *args, **kwargs):
            pass

    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(slm, name, type(name, (_Base,), {}))
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.Choice = lambda choices: ("Choice", tuple(choices))
    stubs.update({"slicer.ScriptedLoadableModule": slm, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": pnw})
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
        sys.modules.pop("LungTumorRecon", None)


def test_logic_adapts_the_pipeline_to_mrml_nodes(module, small_case):
    from LungTumorReconLib.ct_io import read_ct
    from LungTumorReconLib.scene import Scene

    ct_path, mask_path, seeds_path, tumour, seed = small_case
    ct = read_ct(ct_path)
    scene = Scene()
    volume = scene.add_volume(ct.array, ct.geometry, "chest")
    seeds_node = scene.add_seeds([seed])
    nodes = module.LungTumorReconLogic().process(volume, seedsNode=seeds_node, tumor="none", recon="none", scene=scene)
    seg = nodes["segmentation"]
    assert scene.segment_names(seg) == ["right lung", "left lung"]
    masks = scene.segment_masks(seg, ct.geometry)
    assert np.array_equal(masks["right lung"], nodes["result"].segments["right lung"])
    assert nodes["volume"] is volume  # the user's volume is used, not copied
    assert len(scene.nodes_by_class("vtkMRMLScalarVolumeNode")) == 1
    rows = Scene.table_rows(nodes["volumes_table"])
    assert [r["segment"] for r in rows] == ["right lung", "left lung"]
    # a second run fills the same output segmentation node
    again = module.LungTumorReconLogic().process(volume, outputSegmentation=seg, tumor="none", recon="none", scene=scene)
    assert again["segmentation"] is seg
    assert len(scene.nodes_by_class("vtkMRMLSegmentationNode")) == 1


def test_logic_refuses_unbuilt_methods(module, chest64, monkeypatch):
    from LungTumorReconLib import methods
    from LungTumorReconLib.errors import UnavailableError
    from LungTumorReconLib.scene import Scene

    monkeypatch.setitem(methods._NOT_YET, ("tumor", "lnhg"), "issue 99")  # as a later issue's method would be
    scene = Scene()
    volume = scene.add_volume(chest64.array, chest64.geometry)
    with pytest.raises(UnavailableError, match="not available yet"):
        module.LungTumorReconLogic().process(volume, tumor="lnhg", scene=scene)


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
        "import LungTumorReconLib.methods, LungTumorReconLib.scene, LungTumorReconLib.ct_io\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
