# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Every target is idempotent: a second run re-installs and re-builds nothing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rig-installed
MODEL  := models/smollm2-135m-instruct
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup model vllm triton engines demo test lint clean

setup: $(STAMP)

# torch is pinned to 2.13.0 in pyproject.toml; pip takes the CPU build from the machine's
# local wheel folder. torchvision & co. break transformers beside that build: keep them out.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[server,test]'
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

model: setup
	$(PY) -m engines.models smollm2 --out $(MODEL)

# The real engines for the CPU stack, each in its own venv (their pins clash with the baseline's).
vllm: .venv-vllm/.rig-installed
triton: .venv-triton/.rig-installed
engines: vllm triton

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

demo: model engines
	$(PY) -m engines.demo --model $(MODEL)

test: model engines
	$(PY) -m pytest -p no:cacheprovider tests

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
