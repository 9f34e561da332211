"""What ships to a cluster: the code zip of scripts/package.sh, and the docker/ files."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT


def test_code_zip_holds_every_module(code_zip):
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "sparkrec").rglob("*.py"))
    assert zipfile.ZipFile(code_zip).namelist() == modules


def test_sparkrec_imports_from_the_zip(code_zip, tmp_path):
    """As on an executor with --py-files: the zip comes first on sys.path."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import sparkrec.prepare.stages, sparkrec; "
        "assert sparkrec.__file__.startswith(sys.argv[1]), sparkrec.__file__"
    )
    subprocess.run([sys.executable, "-c", script, str(code_zip)], cwd=tmp_path, check=True, timeout=120)


@pytest.mark.slow
def test_docker_check_passes():
    """Compose and Dockerfile checks, hadolint, and the image's install steps replayed here."""
    result = subprocess.run([str(ROOT / "docker" / "check.sh")], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "hadolint: ok" in result.stdout
    assert "replayed install: sparkrec imports" in result.stdout
