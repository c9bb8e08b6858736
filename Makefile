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

demo: install
	$(BIN)/convnets models gunn
	$(BIN)/convnets summary gunn15 --depth 2

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
