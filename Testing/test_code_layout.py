"""The code's shape, as the next engineer meets it: a library in subpackages that show the
pipeline, thin front ends, and the size limits every issue keeps."""

import ast

from conftest import REPO

MODULE = REPO / "LungTumorRecon"
LIB = MODULE / "LungTumorReconLib"
WEB = MODULE / "LungTumorReconWeb"
FRONT_ENDS = [MODULE / "LungTumorRecon.py", *sorted((MODULE / "LungTumorReconModule").glob("*.py")),
              *sorted(WEB.glob("*.py"))]


def _lines(path) -> int:
    return path.read_text(encoding="utf-8").count("\n")


def _python_files():
    for folder in (MODULE, REPO / "LungTumorReconDev", REPO / "benchmarks", REPO / "training", REPO / "Testing"):
        yield from (p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_library_is_in_subpackages_that_show_the_pipeline():
    packages = {p.parent.name for p in LIB.glob("*/__init__.py")}
    assert {"io", "lungs", "tumor", "surface", "networks", "pipeline", "mrml", "dicom"} <= packages
    top_level = {p.stem for p in LIB.glob("*.py")}
    assert top_level <= {"__init__", "cli", "coordinates", "errors", "evaluation", "resources"}, top_level
    # developer-only code is not shipped
    assert not any("synthetic" in p.name or "lidc" in p.name for p in LIB.rglob("*.py"))


def test_size_limits():
    assert _lines(MODULE / "LungTumorRecon.py") < 400
    assert all(_lines(p) < 400 for p in WEB.glob("*.py")), [(p.name, _lines(p)) for p in WEB.glob("*.py")]
    too_long = [(str(p.relative_to(REPO)), _lines(p)) for p in _python_files() if _lines(p) > 600]
    assert too_long == []
    for path in FRONT_ENDS:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno < 300, (path.name, node.name)
    long_functions = []
    others = [p for folder in ("LungTumorReconDev", "benchmarks", "training") for p in (REPO / folder).rglob("*.py")]
    for path in [*LIB.rglob("*.py"), *FRONT_ENDS, *others]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long_functions.append(f"{path.relative_to(REPO)}:{node.name}")
    assert long_functions == []


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_one_direction_of_dependence():
    """The library never imports a GUI; only mrml/ imports slicer; the front ends find the
    project's nodes by role, never by name."""
    for path in LIB.rglob("*.py"):
        if path.name == "cli.py":
            continue  # the command-line front end: `app` starts the web app
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not roots & {"qt", "trame", "trame_slicer", "PySide6", "LungTumorReconWeb", "LungTumorReconModule"}, path
        if path.parent.name != "mrml":
            assert "slicer" not in roots, path
    for path in FRONT_ENDS:
        text = path.read_text(encoding="utf-8")
        assert "GetFirstNodeByName" not in text and "node_by_name" not in text, path.name
        # the stage runner and its titles come from the library, not a copy in each panel
        assert "plan_stage" not in text and "PipelineJob" not in text, path.name
