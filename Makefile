# LungTumorRecon: `make demo` and `make test` are the whole quick start.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offscreen rendering (3d.png, the web app's views) uses EGL with Mesa's software driver;
# the web app's tests drive Debian's chromium through its chromedriver.
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri chromium chromium-driver

.PHONY: install system-packages demo app test bench clean cmake-lists

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
	@$(PY) -c "import LungTumorReconLib, slicer, torch, monai, SimpleITK, skfuzzy" || { echo "error: installation incomplete" >&2; exit 1; }
	@touch $(STAMP)

demo: install
	$(VENV)/bin/lungtumorrecon demo --out out/demo

app: install
	$(VENV)/bin/lungtumorrecon app --out out/app

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_lungs.py
	$(PY) benchmarks/bench_tumor.py
	$(PY) benchmarks/bench_recon.py
	$(PY) benchmarks/bench_deep_tumor.py
	$(PY) benchmarks/bench_memory.py

clean:
	rm -rf out .pytest_cache

cmake-lists:
	$(PYTHON) tools/update_cmake_lists.py
