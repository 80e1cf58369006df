# LungTumorRecon: `make demo` and `make test` are the whole quick start.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offscreen rendering (3d.png, the web app's views) uses EGL with Mesa's software driver;
# the web app's tests drive Debian's chromium through its chromedriver; the DICOM tests start
# a real Orthanc (with its DICOMweb plugin) and check objects with dciodvfy (dicom3tools).
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri chromium chromium-driver orthanc orthanc-dicomweb dicom3tools

.PHONY: install system-packages demo app test test-long bench clean cmake-lists

install: system-packages $(STAMP)

system-packages:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing Debian packages; run: sudo apt-get install -y $$missing" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[deep,headless,web,dev]" 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import LungTumorReconLib, slicer, torch, monai, SimpleITK, skfuzzy, distributed" && test -x $(VENV)/bin/dask \
	  || { echo "error: installation incomplete" >&2; exit 1; }
	@touch $(STAMP)

demo: install
	$(VENV)/bin/lungtumorrecon demo --out out/demo

app: install
	$(VENV)/bin/lungtumorrecon app --out out/app

test: install
	$(PY) -m pytest -q -m "not long"

# the tests make test skips: more configurations of paths it covers, and training runs
test-long: install
	$(PY) -m pytest -q -m long

# Each script's tables go to out/bench/NN-name.md under a line naming the commit it ran at;
# docs/results.md is then written from them whole.
BENCH_SCRIPTS := 1-lungs:bench_lungs 2-tumor:bench_tumor 3-recon:bench_recon 4-deep-tumor:bench_deep_tumor 5-memory:bench_memory 6-deep-real:bench_deep_real 7-finetune:bench_finetune 8-dicom:bench_dicom 9-followup:bench_followup 10-cluster:bench_cluster 11-web-sessions:bench_web_sessions

bench: install
	@mkdir -p out/bench
	@set -o pipefail; for pair in $(BENCH_SCRIPTS); do \
	  section=$${pair%%:*}; script=$${pair##*:}; \
	  { echo "_Ran at commit $$(git rev-parse --short HEAD 2>/dev/null || echo unknown), $$(date -u +%F), \`benchmarks/$$script.py\`._"; echo; \
	    $(PY) -u benchmarks/$$script.py; } | tee out/bench/$$section.md.part || exit 1; \
	  mv out/bench/$$section.md.part out/bench/$$section.md; \
	done
	$(PY) benchmarks/write_results.py out/bench docs/results.md

clean:
	rm -rf out .pytest_cache

cmake-lists:
	$(PYTHON) tools/update_cmake_lists.py
