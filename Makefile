# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, and run the main job on the bundled mini data with the bundled small model
#   make test   create .venv, install, and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (on the machines here, this takes the wheel on disk; never a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0
DEMO_MODEL ?= pyratok

.PHONY: setup demo test report clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m harness run --task ucf101-recon --model $(DEMO_MODEL)

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

report: setup
	$(BIN)/python -m harness report

clean:
	rm -rf $(VENV) .pytest_cache
