#!/usr/bin/env bash
# Build what a cluster needs into dist/ (docs/cluster.md shows the spark-submit lines):
#   dist/sparkrec.zip   the sparkrec package, for --py-files (nodes that already have the dependencies)
#   dist/env.tar.gz     a packed virtualenv with sparkrec and its dependencies, for
#                       --archives dist/env.tar.gz#environment with PYSPARK_PYTHON=./environment/bin/python
#
# Usage: scripts/package.sh [code|env|all]   (default all)
#   DIST=dir            where to write (default dist)
#   PYTHON=python3.11   the interpreter the packed env is built on
#   PYTHON_PREFIX=/usr/local
#                       where that interpreter lives on the cluster nodes, when it differs from
#                       here (a packed venv links to its interpreter rather than containing it)
#   CONSTRAINTS=constraints-legacy.txt
#                       pack the legacy stack (Spark 4.0 clusters) instead of the current one
set -euo pipefail
cd "$(dirname "$0")/.."

DIST=${DIST:-dist}
PYTHON=${PYTHON:-python3}
# The dev venv runs venv-pack; the env being packed is a separate, non-editable install.
TOOLS=${VENV:-.venv}/bin
BUILD=build/package-env

package_code() {
    mkdir -p "$DIST"
    rm -f "$DIST/sparkrec.zip"
    # Sources only (no __pycache__), in a fixed order.
    find sparkrec -name '*.py' | LC_ALL=C sort | zip -q -X "$DIST/sparkrec.zip" -@
    echo "$DIST/sparkrec.zip: $(zipinfo -1 "$DIST/sparkrec.zip" | wc -l) modules"
}

package_env() {
    mkdir -p "$DIST"
    rm -rf "$BUILD"
    "$PYTHON" -m venv "$BUILD"
    "$BUILD/bin/pip" install -q --upgrade pip
    # Not editable: venv-pack refuses editable installs, and executors need the code itself.
    "$BUILD/bin/pip" install -q . ${CONSTRAINTS:+-c "$CONSTRAINTS"}
    "$TOOLS/pip" install -q 'venv-pack==0.2.0'
    "$TOOLS/venv-pack" --prefix "$BUILD" --output "$DIST/env.tar.gz" --force --quiet \
        ${PYTHON_PREFIX:+--python-prefix "$PYTHON_PREFIX"}
    echo "$DIST/env.tar.gz: $(du -h "$DIST/env.tar.gz" | cut -f1)"
}

case "${1:-all}" in
    code) package_code ;;
    env) package_env ;;
    all) package_code && package_env ;;
    *) echo "usage: $0 [code|env|all]" >&2; exit 2 ;;
esac
