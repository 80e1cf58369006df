"""Rewrite the file lists in LungTumorRecon/CMakeLists.txt from what is on disk (make cmake-lists)."""

import re
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "LungTumorRecon"
SHIPPED_PACKAGES = ("LungTumorReconLib", "LungTumorReconModule")  # what the Slicer extension installs


def main() -> None:
    path = MODULE / "CMakeLists.txt"
    text = path.read_text()
    scripts = ["${MODULE_NAME}.py"] + sorted(
        p.relative_to(MODULE).as_posix() for package in SHIPPED_PACKAGES for p in MODULE.glob(f"{package}/**/*.py"))
    resources = sorted(
        p.relative_to(MODULE).as_posix()
        for p in (MODULE / "Resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    for variable, files in (("MODULE_PYTHON_SCRIPTS", scripts), ("MODULE_PYTHON_RESOURCES", resources)):
        block = "\n".join(f"  {f}" for f in files)
        text = re.sub(rf"set\({variable}\n.*?\n  \)", f"set({variable}\n{block}\n  )", text, flags=re.S)
    path.write_text(text)


if __name__ == "__main__":
    main()
