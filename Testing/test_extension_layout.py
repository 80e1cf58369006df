"""The Slicer build files: they cannot be built here (no Slicer SDK), so check what they list."""

import json
import re
import xml.etree.ElementTree as ET

import pytest
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


def _cmake_field(text: str, field: str) -> str:
    return re.search(rf'set\(EXTENSION_{field} "([^"]*)"', text).group(1)


def test_extension_catalog_entry_matches_the_index_schema_and_the_cmake():
    """Resources/ExtensionsIndex/LungTumorRecon.json, ready for Slicer's ExtensionsIndex: valid
    against the index's schema (Testing/Data/ExtensionsIndex, with Slicer's licence) and saying
    what CMakeLists.txt says."""
    import jsonschema

    data = REPO / "Testing" / "Data" / "ExtensionsIndex"
    schema = json.loads((data / "slicer-extension-catalog-entry-schema-v1.0.1.json").read_text())
    entry = json.loads((REPO / "Resources" / "ExtensionsIndex" / "LungTumorRecon.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(entry, schema, cls=jsonschema.Draft7Validator)
    assert entry["$schema"] == schema["$id"]
    assert (data / "License-Slicer.txt").read_text().count("Brigham") > 5
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert entry["category"] == _cmake_field(cmake, "CATEGORY")
    assert entry["scm_url"] == _cmake_field(cmake, "HOMEPAGE")
    assert entry["build_dependencies"] == _cmake_field(cmake, "DEPENDS").split(";") == ["PyTorch"]
    # the icon and screenshots stay in CMakeLists.txt, where the schema wants them
    assert not {"icon", "iconurl", "screenshots"} & {k.lower() for k in entry}
    bad = dict(entry, tier=7)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft7Validator)


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
