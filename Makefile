# The two quickstart commands: `make paper` and `make test`. Both create/refresh .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rlinterp-installed
JOBS   ?= 2
# TORCH=cpu installs PyTorch's CPU-only wheel from PyTorch's own index (about 190 MB); the default (empty) takes
# torch from PyPI, which on Linux is the CUDA build (the wheel plus its nvidia-* packages: several GB) — right for GPUs.
TORCH  ?=
TORCH_INDEX_cpu := --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple

.PHONY: paper test smoke render venv clean mutation

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "rlinterp needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	@case "$(TORCH)" in ""|cpu) ;; *) echo "TORCH must be empty (PyPI's build: CUDA on Linux) or cpu, not '$(TORCH)'"; exit 2;; esac
	@# a .venv left half-made (e.g. Debian's python3.11 without python3.11-venv has no ensurepip) is made anew
	@if [ -d $(VENV) ] && ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
		echo "$(VENV) is incomplete (no working pip): recreating it"; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV): install Python's venv module (Debian/Ubuntu: apt install python3.11-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: any other version would pull gigabytes of CUDA wheels
	$(BIN)/python -m pip install --quiet "torch==2.13.0" $(TORCH_INDEX_$(TORCH))
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,cluster,mutation]"
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

## make mutation [MODULE=rlinterp.pipeline.analyses] [TESTS="tests/a.py ..."] [SURVIVORS=1]: mutation testing over
## pipeline/, envs/, interp/, learners/ with mutmut (slow: not part of `make test` or CI) or one module (minutes);
## SURVIVORS=1 re-tests only the last run's survivors; writes _build/mutation/<target>/report.md (score, survivors)
mutation: $(STAMP)
	@$(BIN)/python -c 'import mutmut' 2>/dev/null || $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[mutation]"
	PYTHONPATH=$(CURDIR)/lib $(BIN)/python -m rlinterp.pipeline.mutation --jobs $(JOBS) $(if $(MODULE),--module $(MODULE)) $(if $(TESTS),--tests "$(TESTS)") $(if $(SURVIVORS),--survivors)

render: $(STAMP)
	$(BIN)/rli render

clean:
	rm -rf _book _build .pytest_cache
