# The two quickstart commands: `make paper` and `make test`. Both create/refresh .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rlinterp-installed
JOBS   ?= 2

.PHONY: paper test smoke render venv clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "rlinterp needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: any other version would pull gigabytes of CUDA wheels
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

## make paper: run every analysis (cached) and render the book into _book/ (HTML + PDF)
paper: $(STAMP)
	$(BIN)/rli build -j $(JOBS)

## make test: unit, property and pipeline tests, including an end-to-end smoke build of the whole book
test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -n $(JOBS) --dist loadgroup

## make smoke: the whole book with tiny sizes (what CI builds), under _build/smoke/
smoke: $(STAMP)
	$(BIN)/rli build --profile smoke -j $(JOBS)

render: $(STAMP)
	$(BIN)/rli render

clean:
	rm -rf _book _build .pytest_cache
