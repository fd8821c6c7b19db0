# Two commands do all the set-up (README): `make demo` runs the pipeline, `make test` runs the tests.
# Each creates .venv and installs into it when missing. torch is installed FIRST and pinned, because an
# unpinned torch pulls the multi-GB CUDA build; on a GPU cluster set TORCH_SPEC to your CUDA build.
# TORCH_INDEX: the index torch comes from. Empty: pip's default index, where the pin is the CPU wheel only
# if one is cached here; set it to https://download.pytorch.org/whl/cpu on a fresh CPU machine.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.nudistill-installed
RUN ?= runs/demo
PYTEST_ARGS ?=

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nudistill demo --out $(RUN)

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
