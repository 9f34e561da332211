#!/usr/bin/env bash
# The Python half of docker/Dockerfile, in two steps so that code changes do not reinstall
# the dependencies; docker/check.sh replays both outside Docker. Run from the project root.
#   docker/install.sh deps VENV      a virtualenv with the pinned dependencies of pyproject.toml
#   docker/install.sh project VENV   the sparkrec package on top (not editable)
set -euo pipefail
step=$1
venv=$2

install_deps() {
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/python" -c '
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
' > "$venv/requirements.txt"
    "$venv/bin/pip" install -q -r "$venv/requirements.txt"
}

install_project() {
    "$venv/bin/pip" install -q --no-deps .
}

case "$step" in
    deps) install_deps ;;
    project) install_project ;;
    *) echo "usage: $0 deps|project VENV" >&2; exit 2 ;;
esac
