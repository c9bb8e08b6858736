# Two entry points: `make demo` (main job on the built-in data) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/convnets: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/convnets

# Trains the default model (ResNet-20) on the built-in handwritten digits, then evaluates
# the run it wrote (runs/<model>-<time>/).
demo: install
	$(BIN)/convnets train
	$(BIN)/convnets eval "$$(ls -td runs/* | head -n 1)"

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
