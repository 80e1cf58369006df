"""What the extension ships runs on Slicer 5.8's Python (3.9).

The command line and the web app need Python >= 3.10 (pyproject); the files Slicer loads (the
module and its library, as the module's CMakeLists.txt lists them) must not. Three checks, each
shown to fail on a snippet that breaks it:

* the parser at 3.9's grammar (``ast.parse(feature_version=(3, 9))``);
* vermin, which knows the version each syntax and standard-library feature needs;
* ``X | None`` evaluated at run time (vermin misses it): outside annotations that
  ``from __future__ import annotations`` leaves unevaluated, and inside a parameterNodeWrapper
  class, whose annotations Slicer evaluates with ``typing.get_type_hints``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

MODULE = REPO / "LungTumorRecon"
TARGET = (3, 9)
_TYPE_NAMES = {"int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset", "type", "object"}


def shipped_scripts() -> list[Path]:
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    block = re.search(r"set\(MODULE_PYTHON_SCRIPTS\s+(.*?)\)", text, re.S).group(1)
    return [MODULE / tok.replace("${MODULE_NAME}", "LungTumorRecon") for tok in block.split()]


def parse_errors(source: str, name: str) -> list[str]:
    try:
        ast.parse(source, filename=name, feature_version=TARGET)
    except SyntaxError as exc:
        return [f"{name}:{exc.lineno}: {exc.msg}"]
    return []


def vermin_errors(paths: list[Path]) -> list[str]:
    vermin = Path(sys.executable).parent / "vermin"
    proc = subprocess.run([str(vermin), f"-t={TARGET[0]}.{TARGET[1]}-", "--violations", "--no-tips",
                           "--no-parse-comments", *map(str, paths)], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    return [line for line in proc.stdout.splitlines() if "requires" in line] or [proc.stdout + proc.stderr]


def _evaluated_later(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
               for n in tree.body)


def _unevaluated_annotation_nodes(tree: ast.Module) -> set[int]:
    if not _evaluated_later(tree):
        return set()
    evaluated_classes = {id(s) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                         and any(getattr(d, "id", getattr(d, "attr", None)) == "parameterNodeWrapper"
                                 for d in n.decorator_list) for s in n.body}
    annotations = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            annotations += [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
                            if x is not None and x.annotation is not None]
            annotations += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign) and id(node) not in evaluated_classes:
            annotations.append(node.annotation)
    return {id(n) for a in annotations for n in ast.walk(a)}


def _is_type(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if isinstance(node, ast.Subscript):
        node = node.value
    return isinstance(node, ast.Name) and node.id in _TYPE_NAMES


def runtime_union_errors(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    skip = _unevaluated_annotation_nodes(tree)
    return [f"{name}:{n.lineno}: 'X | Y' of types is evaluated at run time (Python 3.10)"
            for n in ast.walk(tree)
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) and id(n) not in skip
            and (_is_type(n.left) or _is_type(n.right))]


def test_the_shipped_files_are_the_module_and_its_library():
    paths = shipped_scripts()
    assert MODULE / "LungTumorRecon.py" in paths and len(paths) > 30
    assert all(p.is_file() for p in paths)


def test_the_shipped_files_parse_as_python_3_9():
    assert [e for p in shipped_scripts() for e in parse_errors(p.read_text(encoding="utf-8"), p.name)] == []


def test_the_shipped_files_need_nothing_newer_than_python_3_9():
    assert vermin_errors(shipped_scripts()) == []


def test_the_shipped_files_evaluate_no_type_unions():
    assert [e for p in shipped_scripts() for e in runtime_union_errors(p.read_text(encoding="utf-8"), p.name)] == []


BROKEN = {
    "match": "def f(x):\n    match x:\n        case 1:\n            return 1\n",
    "zip-strict": "def f(a, b):\n    return list(zip(a, b, strict=True))\n",
    "runtime-union": "from __future__ import annotations\ndef f(x: int | None) -> str | None:\n"
                     "    return isinstance(x, int | None)\n",
    "union-without-future": "def f(x: int | None):\n    return x\n",
    "parameter-node-union": "from __future__ import annotations\n@parameterNodeWrapper\nclass P:\n"
                            "    seeds: vtkMRMLMarkupsFiducialNode | None\n",
}


@pytest.mark.parametrize("case,caught_by", [
    ("match", "parse"), ("match", "vermin"), ("zip-strict", "vermin"), ("runtime-union", "union"),
    ("union-without-future", "union"), ("parameter-node-union", "union"),
])
def test_each_check_fails_on_a_broken_snippet(tmp_path, case, caught_by):
    source = BROKEN[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source, encoding="utf-8")
    errors = {"parse": lambda: parse_errors(source, path.name), "vermin": lambda: vermin_errors([path]),
              "union": lambda: runtime_union_errors(source, path.name)}[caught_by]()
    assert errors, f"{caught_by} missed {case}"


def test_annotations_left_unevaluated_are_not_flagged():
    source = "from __future__ import annotations\ndef f(x: int | None = None) -> dict[str, int] | None:\n" \
             "    y: list[int] | None = None\n    return None\n"
    assert runtime_union_errors(source, "ok.py") == []
