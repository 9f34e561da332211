# Two commands on a fresh machine:  make demo  (the pipeline on generated data)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pyspark's spark-submit with the venv's Spark and Python, conf/spark/local.conf by default (sparkrec/core/submit.py).
SPARK_SUBMIT := $(BIN)/sparkrec-submit
# pyspark's own launchers (test-legacy's spark-submit lines; Spark started from Python by the
# tests) find Spark and start Python workers through the PATH and PYSPARK_PYTHON: the venv's.
export PATH := $(abspath $(BIN)):$(PATH)
export PYSPARK_PYTHON := $(abspath $(BIN))/python
DEMO ?= data/demo
DEMO_USERS ?= 2000

.PHONY: demo test test-fast lint java venv clean

# Spark needs Java 17; install the headless JRE where no java is on the PATH.
java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "java not found: installing openjdk-17-jre-headless"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
	@java -version 2>&1 | head -1

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: java venv
	$(BIN)/python jobs/generate.py --users $(DEMO_USERS) --seed 7 --output $(DEMO)/raw
	$(SPARK_SUBMIT) jobs/prepare.py --input $(DEMO)/raw --output $(DEMO)/prepared --config conf/prepare.yaml
	$(BIN)/python jobs/train.py --data $(DEMO)/prepared --output $(DEMO)/model --config conf/train.yaml
	$(SPARK_SUBMIT) jobs/score.py --data $(DEMO)/prepared --model $(DEMO)/model --output $(DEMO)/scores \
	    --config conf/score.yaml
	$(SPARK_SUBMIT) jobs/evaluate.py --data $(DEMO)/prepared --model $(DEMO)/model --output $(DEMO)/evaluation \
	    --config conf/evaluate.yaml

test: java venv
	$(BIN)/pytest

test-fast: java venv
	$(BIN)/pytest -m "not slow and not cluster"

# ruff's lint rules and formatting, as configured in pyproject.toml.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(DEMO) .pytest_cache

.PHONY: package test-cluster test-legacy

# The legacy stack (constraints-legacy.txt) in its own venv: prepare -> train -> score -> evaluate
# on ml-latest-small, then the default stack prepares, scores and evaluates with the legacy
# model, and scripts/compare_stacks.py checks the two stacks wrote the same outputs.
LEGACY_VENV ?= .venv-legacy
LEGACY_BIN := $(abspath $(LEGACY_VENV))/bin
LEGACY := PATH=$(LEGACY_BIN):$$PATH PYSPARK_PYTHON=$(LEGACY_BIN)/python
STACKS ?= build/stacks
ML_SMALL ?= ../shared/data/ml-latest-small
STACK_TRAIN := --set epochs=2 --set seed=42
# Every baseline at one grid point: this stage compares stacks, it does not tune.
STACK_EVALUATE := --set widen_steps=0 --set als_implicit_ranks=64 --set als_implicit_reg_params=0.01 \
    --set als_implicit_alphas=1.0 --set ease_lambdas=300.0 --set ease_dislike_weights=0.5 --set als_ranks=10 --set als_reg_params=0.1

$(LEGACY_VENV)/.installed: pyproject.toml constraints-legacy.txt
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_BIN)/pip install -q --upgrade pip
	$(LEGACY_BIN)/pip install -q -e '.[dev]' -c constraints-legacy.txt
	touch $@

test-legacy: java venv $(LEGACY_VENV)/.installed
	$(LEGACY) $(LEGACY_BIN)/pytest -q -p no:cacheprovider tests/test_prepare.py tests/test_console.py \
	    -k "petastorm or prepare_under_spark_submit"
	$(LEGACY) $(LEGACY_BIN)/spark-submit --properties-file conf/spark/local.conf jobs/prepare.py \
	    --input $(ML_SMALL) --output $(STACKS)/legacy/prepared --set sample_users=all
	$(LEGACY) $(LEGACY_BIN)/python jobs/train.py --data $(STACKS)/legacy/prepared --output $(STACKS)/model \
	    $(STACK_TRAIN)
	$(SPARK_SUBMIT) jobs/prepare.py --input $(ML_SMALL) --output $(STACKS)/current/prepared --set sample_users=all
	for stack in legacy current; do \
	  if [ $$stack = legacy ]; then run="$(LEGACY)"; bin=$(LEGACY_BIN); else run=; bin=$(abspath $(BIN)); fi; \
	  env $$run $$bin/spark-submit --properties-file conf/spark/local.conf jobs/score.py \
	      --data $(STACKS)/$$stack/prepared --model $(STACKS)/model --output $(STACKS)/$$stack/scores || exit 1; \
	  env $$run $$bin/spark-submit --properties-file conf/spark/local.conf jobs/evaluate.py \
	      --data $(STACKS)/$$stack/prepared --model $(STACKS)/model --output $(STACKS)/$$stack/evaluation \
	      $(STACK_EVALUATE) || exit 1; \
	done
	$(BIN)/python scripts/compare_stacks.py $(STACKS)/current $(STACKS)/legacy

# What a cluster needs, in dist/: sparkrec.zip for --py-files, env.tar.gz for --archives (docs/cluster.md).
package: venv
	scripts/package.sh

# The jobs on real Spark clusters on loopback (standalone master and workers, local-cluster).
test-cluster: java venv
	$(BIN)/pytest -m cluster
