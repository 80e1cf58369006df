"""The README is a user guide within 25 KB whose links resolve and whose library example
runs; docs/results.md is written whole by benchmarks/write_results.py."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

README = REPO / "README.md"


def test_readme_is_a_short_guide_in_the_agreed_order():
    text = README.read_text()
    assert len(text.encode()) <= 25 * 1024
    headings = [h for h in re.findall(r"^## (.+)$", text, re.M)]
    order = ["Install", "Step by step", "Command line", "Scripting", "Results", "Layout", "Data and licences"]
    positions = [next(i for i, h in enumerate(headings) if h.startswith(name)) for name in order]
    assert positions == sorted(positions)
    assert "Not for clinical use" in text


@pytest.mark.parametrize("page", ["README.md", "docs/methods.md", "docs/cli.md", "docs/front-ends.md"])
def test_relative_links_resolve(page):
    path = REPO / page
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()) + re.findall(
            r'src="([^"]+)"', path.read_text()):
        assert (path.parent / target).exists(), f"{page}: {target}"


def test_the_scripting_example_runs(tmp_path):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    library_example = next(c for c in code if "LungTumorReconLib" in c and "import slicer" not in c)
    result = subprocess.run([sys.executable, "-c", library_example], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "LungTumorRecon")}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 1.0 < float(result.stdout.split()[0]) < 2.5  # the sample nodule's label is 1.36 mL


def test_results_are_written_whole_or_not_at_all(tmp_path):
    sections = tmp_path / "bench"
    sections.mkdir()
    (sections / "2-b.md").write_text("## Second\n")
    (sections / "1-a.md").write_text("## First\n")
    target = tmp_path / "results.md"
    target.write_text("old")
    script = REPO / "benchmarks" / "write_results.py"
    subprocess.run([sys.executable, str(script), str(sections), str(target)], check=True, capture_output=True)
    text = target.read_text()
    assert text.startswith("# Benchmark results") and text.index("## First") < text.index("## Second")
    empty = tmp_path / "none"
    empty.mkdir()
    failed = subprocess.run([sys.executable, str(script), str(empty), str(target)], capture_output=True, text=True)
    assert failed.returncode != 0 and failed.stderr.startswith("error:")
    assert target.read_text() == text  # the old file is kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".results-")] == []
