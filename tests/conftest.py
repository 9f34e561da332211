"""Shared fixtures: one local[2] SparkSession per test session, real MovieLens data, job runners."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real MovieLens data lives beside the repository (../shared/data), never inside it.
SHARED_DATA = Path(os.environ.get("SPARKREC_SHARED_DATA", ROOT.parent / "shared" / "data"))
ML_SMALL = SHARED_DATA / "ml-latest-small"


# jobs/train.py settings for a small, quick deep model: tests of the jobs, not of the model's quality
# (tests/test_twotower.py trains the default two-tower model).
TINY_TRAIN = [
    "--set", "model=deep",
    "--set", "epochs=2",
    "--set", "embedding_dim=16",
    "--set", "hidden_units=32",
    "--set", "importance_rows=3000",
    "--set", "importance_repeats=1",
    "--set", "eval_batch_size=4096",
    "--set", "shuffle_buffer_rows=40000",
    "--set", "keras_verbose=0",
]


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under `root` (root included) by relative path: directories, links and file contents."""
    entries = {}
    for directory, subdirectories, files in os.walk(root):
        for name in ["", *subdirectories, *files]:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                entries[relative] = "link -> " + os.readlink(path)
            elif path.is_dir():
                entries[relative] = "directory"
            else:
                entries[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


def emptied_copy(prepared: Path, target: Path, table: str) -> Path:
    """A copy of a prepare output whose Parquet `table` keeps its schema and has no rows."""
    shutil.copytree(prepared, target, ignore=shutil.ignore_patterns("figures", "quarantine"))
    schema = pq.read_table(target / table).schema
    shutil.rmtree(target / table)
    (target / table).mkdir()
    pq.write_table(schema.empty_table(), target / table / "part-00000.parquet")
    return target


def load_script(path: str, name: str):
    """Import a script of the project (a path from its root) as the module `name`."""
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_job(name: str):
    """Import jobs/<name>.py as a module, so tests drive the real entry points."""
    return load_script(f"jobs/{name}.py", f"jobs_{name}")


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter (the venv's), whatever python3 the PATH finds.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sparkrec-tests")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def ml_small() -> Path:
    if not (ML_SMALL / "ratings.csv").is_file():
        pytest.fail(f"real MovieLens fixture missing: {ML_SMALL} (set SPARKREC_SHARED_DATA)")
    return ML_SMALL


@pytest.fixture(scope="session")
def prepare_job():
    return load_job("prepare")


@pytest.fixture(scope="session")
def prepared_small(spark, ml_small, prepare_job, tmp_path_factory) -> Path:
    """prepare's output on ml-latest-small: all 610 users, default seed and random split."""
    output = tmp_path_factory.mktemp("prepared") / "ml-small"
    prepare_job.main(["--input", str(ml_small), "--output", str(output), "--set", "sample_users=all"])
    return output


@pytest.fixture
def ml_small_copy(ml_small, tmp_path) -> Path:
    """A writable copy of ml-latest-small, for tests that damage their input."""
    target = tmp_path / "ml-copy"
    shutil.copytree(ml_small, target)
    return target


@pytest.fixture(scope="session")
def code_zip(tmp_path_factory) -> Path:
    """scripts/package.sh's dist/sparkrec.zip (the --py-files archive), built once per session."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([str(ROOT / "scripts" / "package.sh"), "code"], env={**os.environ, "DIST": str(dist)},
                   check=True, capture_output=True, timeout=60)
    return dist / "sparkrec.zip"
