# Two commands on a fresh machine:  make demo  (the pipeline on generated data)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPARK_SUBMIT := $(BIN)/spark-submit --properties-file conf/spark/local.conf
# spark-submit finds Spark and starts Python workers through the PATH: use the venv's.
export PATH := $(abspath $(BIN)):$(PATH)
export PYSPARK_PYTHON := $(abspath $(BIN))/python
DEMO ?= data/demo
DEMO_USERS ?= 2000

.PHONY: demo test test-fast java venv clean

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

clean:
	rm -rf $(DEMO) .pytest_cache

.PHONY: package test-cluster

# What a cluster needs, in dist/: sparkrec.zip for --py-files, env.tar.gz for --archives (docs/cluster.md).
package: venv
	scripts/package.sh

# The jobs on real Spark clusters on loopback (standalone master and workers, local-cluster).
test-cluster: java venv
	$(BIN)/pytest -m cluster
