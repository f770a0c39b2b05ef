# pas: `make install`, `make test`, `make lint`. See README.md.
PYTHON ?= python3
# VENV: the virtual environment to make and install into (default .venv). VENV= (empty) installs into
# PYTHON itself: the active conda env, module or container Python.
VENV ?= .venv
# SYSTEM_SITE=1: the venv also sees the packages of the Python that makes it (a conda env or module
# that has torch: IBM's/Open-CE torch on Power9), so they are used, not reinstalled.
SYSTEM_SITE ?=
# torch/torchvision pins, installed only when the interpreter cannot import torch yet (a CUDA build that
# also runs on CPU). Set TORCH_PKGS= to never install torch.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# pytest-xdist workers of `make test` and `make test-slurm`: the cores plus the two SLURM test groups, which
# mostly wait for the scheduler (at most 8); TEST_WORKERS=1 runs every test in this one process, in order
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n + 2 > 8 ? 8 : n + 2 )))
XDIST = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder)
# `make search`: the demo search on this machine; `make search CLUSTER=marconi100 JOB=jobs/r2plus1d18_k400.yaml`
CLUSTER ?= local
JOB ?= jobs/demo.yaml
SEARCH ?=

ifeq ($(strip $(VENV)),)
PY := $(PYTHON)
STAMP := .install-stamp
else
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
endif
PAS := $(PY) -m pas_orchestrator

.PHONY: install test test-slurm test-pyav lint bench bench-search bench-cache bench-gradient bench-known-answer \
  bench-strategies bench-gradient-ablations bench-gpu clean search status report doctor

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
ifneq ($(strip $(VENV)),)
	test -x $(PY) || $(PYTHON) -m venv $(if $(strip $(SYSTEM_SITE)),--system-site-packages) $(VENV)
endif
	$(if $(strip $(TORCH_PKGS)),$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_PKGS))
	$(PY) -m pip install -e '.[dev]'
	@$(PY) -c "import sys, os; b = os.path.join(os.path.dirname(sys.executable), 'pas'); \
	  print(f'pas is installed: {b}\nput it on PATH: ' + (f'source {os.path.join(sys.prefix, \"bin\", \"activate\")}' \
	  if sys.prefix != sys.base_prefix else f'export PATH={os.path.dirname(b)}:\$$PATH') + '   (then: pas doctor)')"
	touch $@

doctor: install
	$(PAS) doctor

# every test; the `slurm` ones against a throw-away SLURM cluster started and stopped here when running
# as root with apt (as in CI); otherwise they are skipped with the reason (tests/slurm/run-tests.sh)
test: install
	bash tests/slurm/run-tests.sh $(PY) $(XDIST) $(PYTEST_ARGS)

# only the tests marked `slurm` (root): PAS_SLURM_TESTS=yes fails instead of skipping
test-slurm: install
	PAS_SLURM_TESTS=yes bash tests/slurm/run-tests.sh $(PY) -m slurm $(XDIST) $(PYTEST_ARGS)

# the data tests with decord made unimportable and PyAV forced for every dataset: the Power9 path
test-pyav: install
	PAS_VIDEO_BACKEND=pyav PYTHONPATH=$(CURDIR)/tests/no_decord PAS_SLURM_TESTS=no bash tests/slurm/run-tests.sh $(PY) $(XDIST) \
	  tests/test_data_backends.py tests/test_data_exact.py tests/test_data_views.py tests/test_data_sampling.py \
	  tests/test_data_formats.py tests/test_cli_data.py tests/test_cli_prepare.py tests/test_train_run.py $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: install
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_frame_exact.py
	$(PY) benchmarks/bench_backends.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_status.py
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_latency.py

# whole searches, one at a time (about 35 and 40 minutes on a 2-core machine): what successive halving
# saves and whether it keeps the path; what the teacher cache saves and costs, and whether it keeps the path
# one NVIDIA GPU, within 7 minutes: decode CPU vs NVDEC, the step's options, every PAS-N, the roofline (docs/gpu.md)
bench-gpu: install
	$(PY) benchmarks/bench_gpu.py --json benchmarks/out/gpu.json --plot benchmarks/out/gpu-roofline.png

bench-search: install
	$(PY) benchmarks/bench_search_cost.py

bench-cache: install
	$(PY) benchmarks/bench_teacher_cache.py

# the gradient strategy against PAS on the same B (two backbones, two seeds, 1 vs 3 cycles; about 70 minutes)
bench-gradient: install
	$(PY) benchmarks/bench_gradient.py

# iteration 1 of PAS on each known-answer probe (s, t, f), 3 replicas, with halving and the teacher cache: the
# operator that destroys a probe's evidence must lose (docs/benchmarks.md; about 40 minutes on 2 cores)
bench-known-answer: install
	$(PY) benchmarks/probe_evidence.py
	$(PY) benchmarks/bench_known_answer.py

# every strategy over seeds 0-2 on the demo and on its slowfast_tiny twin, one search at a time: the tables of
# docs/benchmarks.md (hours on 2 cores; a search already done under benchmarks/out/strategies is reused)
bench-strategies: install
	$(PY) benchmarks/bench_strategies.py --job jobs/demo.yaml
	$(PY) benchmarks/bench_strategies.py --job jobs/demo.yaml --backbone slowfast_tiny

# the gradient strategy against its three ablations (supernet weights, one candidate, longer short training),
# seeds 0-2 on the demo, reusing the full searches above
bench-gradient-ablations: install
	$(PY) benchmarks/bench_strategies.py --job jobs/demo.yaml --variants gradient,gradient_supernet,gradient_one,gradient_half

search: install
	$(PAS) search --job $(JOB) --cluster $(CLUSTER) $(if $(SEARCH),--name $(SEARCH))
	$(PAS) report $(if $(SEARCH),--search $(SEARCH))

status: install
	$(PAS) status $(if $(SEARCH),--search $(SEARCH))

report: install
	$(PAS) report $(if $(SEARCH),--search $(SEARCH))

clean:
	rm -rf $(if $(strip $(VENV)),$(VENV)) .install-stamp build *.egg-info .pytest_cache .ruff_cache
