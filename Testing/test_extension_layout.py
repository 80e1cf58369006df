"""The Slicer build files: they cannot be built here (no Slicer SDK), so check what they list."""

import re
import xml.etree.ElementTree as ET

from conftest import REPO

MODULE = REPO / "LungTumorRecon"


def _listed(cmake_text: str, variable: str) -> set[str]:
    block = re.search(rf"set\({variable}\s+(.*?)\)", cmake_text, re.S).group(1)
    return {tok for tok in block.split() if not tok.startswith("#")}


def test_every_python_and_resource_file_is_listed_in_the_module_cmake():
    text = (MODULE / "CMakeLists.txt").read_text()
    scripts = _listed(text, "MODULE_PYTHON_SCRIPTS")
    resources = _listed(text, "MODULE_PYTHON_RESOURCES")
    on_disk_py = {p.relative_to(MODULE).as_posix() for package in ("LungTumorReconLib", "LungTumorReconModule")
                  for p in MODULE.glob(f"{package}/**/*.py")}
    on_disk_py.add("${MODULE_NAME}.py")
    assert scripts == on_disk_py
    on_disk_res = {
        p.relative_to(MODULE).as_posix()
        for p in (MODULE / "Resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert resources == on_disk_res
    for name in ("slicerMacroBuildScriptedModule", "WITH_GENERIC_TESTS", "slicer_add_python_unittest"):
        assert name in text


def test_extension_cmake_follows_the_template():
    text = (REPO / "CMakeLists.txt").read_text()
    for needle in (
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(LungTumorRecon)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert needle in text
    for field in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert f"set(EXTENSION_{field} " in text


def test_icon_is_128_square_png():
    from PIL import Image

    for path in (REPO / "LungTumorRecon.png", MODULE / "Resources" / "Icons" / "LungTumorRecon.png"):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (128, 128)


def test_ui_names_every_parameter_the_widget_binds():
    """Parameter-node fields reach the GUI through SlicerParameterName properties in the .ui."""
    tree = ET.parse(MODULE / "Resources" / "UI" / "LungTumorRecon.ui")
    bound = {
        prop.find("string").text
        for prop in tree.iter("property")
        if prop.get("name") == "SlicerParameterName"
    }
    source = (MODULE / "LungTumorRecon.py").read_text()
    fields = set(re.findall(r"^    (\w+): ", source.split("class LungTumorReconParameterNode")[1].split("\nclass ")[0], re.M))
    assert bound == fields
    names = {w.get("name") for w in tree.iter("widget")}
    assert "applyButton" in names
