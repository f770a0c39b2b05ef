# pas: `make install`, `make test`, `make lint`. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision are installed first and pinned here (a CUDA build that also runs on CPU).
# On Power9 / other platforms set TORCH_PKGS to the right pins, or to "" to keep an existing torch.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# `make search`: the demo search on this machine; `make search CLUSTER=marconi100 JOB=jobs/r2plus1d18_k400.yaml`
CLUSTER ?= local
JOB ?= jobs/demo.yaml
SEARCH ?=

.PHONY: install test test-slurm lint bench clean search status report

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_PKGS)),$(PY) -m pip install $(TORCH_PKGS))
	$(PY) -m pip install -e '.[dev]'
	touch $@

# every test; the `slurm` ones against a throw-away SLURM cluster started and stopped here when running
# as root with apt (as in CI); otherwise they are skipped with the reason (tests/slurm/run-tests.sh)
test: install
	bash tests/slurm/run-tests.sh $(PY) $(PYTEST_ARGS)

# only the tests marked `slurm` (root): PAS_SLURM_TESTS=yes fails instead of skipping
test-slurm: install
	PAS_SLURM_TESTS=yes bash tests/slurm/run-tests.sh $(PY) -m slurm $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_status.py
	$(PY) benchmarks/bench_latency.py

search: install
	$(VENV)/bin/pas search --job $(JOB) --cluster $(CLUSTER) $(if $(SEARCH),--name $(SEARCH))
	$(VENV)/bin/pas report $(if $(SEARCH),--search $(SEARCH))

status: install
	$(VENV)/bin/pas status $(if $(SEARCH),--search $(SEARCH))

report: install
	$(VENV)/bin/pas report $(if $(SEARCH),--search $(SEARCH))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
