# songmill — set-up, demo, tests and benchmarks. Every target installs what is missing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.requirements-installed
NUMBA_STAMP := $(VENV)/.numba-cache-warmed
DEBIAN_PACKAGES := ffmpeg fluidsynth fluid-soundfont-gm espeak-ng libchromaprint-tools docker-compose redis-server musescore3 chromium
# Two cores: one torch/BLAS thread per process keeps parallel tracks from fighting.
export OMP_NUM_THREADS ?= 1
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: setup system-packages demo lint test test-long test-live test-all test-docker docker-images audit bench airflow clean
setup: system-packages $(STAMP) $(NUMBA_STAMP)

system-packages:
	@bash scripts/install-system-packages.sh $(DEBIAN_PACKAGES)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# numba's caches written in one process (two processes writing them at once can corrupt them),
# again whenever the libraries or what the gate compiles change
$(NUMBA_STAMP): $(STAMP) qc/musical.py scripts/warm_numba_cache.py
	$(BIN)/python scripts/warm_numba_cache.py
	@touch $(NUMBA_STAMP)

# The demo signs its Content Credentials with a throw-away test CA made in var/ (never a real key).
DEMO_SIGNING := var/demo-signing
demo: setup
	@test -f $(DEMO_SIGNING)/chain.pem || $(BIN)/songmill credentials test-ca $(DEMO_SIGNING) >/dev/null
	SONGMILL_DEMO_SIGNING_CHAIN=$(DEMO_SIGNING)/chain.pem SONGMILL_DEMO_SIGNING_KEY=$(DEMO_SIGNING)/signer.key \
		$(BIN)/songmill render config/releases/demo.yaml --out dist
	SONGMILL_DEMO_SIGNING_CHAIN=$(DEMO_SIGNING)/chain.pem SONGMILL_DEMO_SIGNING_KEY=$(DEMO_SIGNING)/signer.key \
		$(BIN)/songmill verify $$(ls dist/streaming/*/resources/*_01_001.flac | head -1)

# The house rules: lint and format (ruff), types (mypy), the layers of DESIGN §2 (import-linter).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (pytest-xdist), a test file each at a time: module fixtures render once.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

# The default suite: every stage end to end once (the debug release, short songs), every room's
# measured properties and every failure case that costs seconds. The deeper renders of what it
# covers are marked `long` and run in `make test-long` (CI runs both).
test: lint
	$(PYTEST) -m "not slow and not long"

test-long: setup
	$(PYTEST) -m "long and not slow"

# The live Airflow runs (separate processes, PostgreSQL, Celery with Redis): a few minutes.
test-live: setup
	$(BIN)/python -m pytest -q -m slow -p no:cacheprovider tests/test_airflow_live.py

# Everything, slow tests included, at full size: 10,000 fuzzed release configs, every row of the
# fault matrix, the 24-song soak run (benchmarks/results/fuzz.json, fault-matrix.md, soak.json).
test-all: lint
	SONGMILL_FULL=1 $(PYTEST) -m "not docker"

# The Docker images built here and the compose stack run (tests/test_docker.py): dockerd started
# by the test when none answers (as root), a debootstrap base, a two-track night through the REST
# API with the gpu worker killed mid-vocals. Needs Debian's docker.io, docker-compose and
# debootstrap (installed here when missing). About 17 minutes the first time (the image build),
# 9 after; figures in benchmarks/results/docker.json.
test-docker: setup
	@bash scripts/install-system-packages.sh docker.io docker-compose debootstrap
	$(BIN)/python -m pytest -q -p no:cacheprovider -m docker tests/test_docker.py

# The images alone, on the public Debian base (or BASE=local/debian:bookworm after `python scripts/docker_stack.py base`)
BASE ?= debian:bookworm-slim
docker-images: setup
	$(BIN)/python scripts/docker_stack.py build --base $(BASE)

# The pinned requirements against the offline vulnerability database (scripts/audit_dependencies.py);
# `make test` runs it too. Where PyPI's JSON API or OSV is reachable, `pip-audit -r requirements.txt` as well.
audit: setup
	$(BIN)/python scripts/audit_dependencies.py

bench: setup
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench_airflow.py
	$(BIN)/python benchmarks/bench_grid.py
	$(BIN)/python benchmarks/bench_watermark.py
	$(BIN)/python benchmarks/bench_feedback.py
	$(BIN)/python benchmarks/bench_reliability.py
	$(BIN)/python benchmarks/bench_editor.py

# Airflow on this machine: api-server, scheduler, dag-processor, triggerer (LocalExecutor).
airflow: setup
	$(BIN)/python scripts/airflow_local.py

clean:
	rm -rf var dist .pytest_cache
