# pas: `make install`, `make test`, `make lint`. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision are installed first and pinned here (a CUDA build that also runs on CPU).
# On Power9 / other platforms set TORCH_PKGS to the right pins, or to "" to keep an existing torch.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_PKGS)),$(PY) -m pip install $(TORCH_PKGS))
	$(PY) -m pip install -e '.[dev]'
	touch $@

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
