# Two commands for a fresh machine:  `make demo` (install, then pick the bundled demo data)
# and `make test` (install the test dependencies, then run the tests).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# The test set-up pins the CPU build of torch only where no torch is installed yet, so a GPU
# user's CUDA torch is left alone (an unpinned torch would pull several GB of CUDA packages).
TORCH_PIN := $(shell $(PYTHON) -c "import torch" >/dev/null 2>&1 || echo "torch==2.13.0")
# `make test` runs the test files in this many pytest-xdist workers (each file in one worker, so
# its module fixtures are built once); the training tests use one torch thread each.
TEST_WORKERS ?= 2

.PHONY: install demo test test-all bench

install:
	$(PIP) install -q -e .

demo: install
	$(PYTHON) -m epick.runtime.demo

test:
	$(PIP) install -q $(TORCH_PIN) -e ".[dev]"
	# Topaz's own coordinate readers check the tables epick writes (tests only; GPL-3.0, not
	# shipped). --no-deps: its torchvision requirement would pull CUDA torch; the readers need pandas.
	$(PIP) install -q --no-deps topaz-em==0.3.20
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-all:
	$(PYTHON) -m pytest -q -m "slow or not slow"

# the CPU benchmarks behind the README's speed table (each prints a table and writes bench_results/*.json)
BENCHMARKS := bench_preprocess bench_peaks bench_pick bench_evaluate bench_coordinates bench_simulate

bench:
	for b in $(BENCHMARKS); do $(PYTHON) benchmarks/$$b.py || exit 1; done
