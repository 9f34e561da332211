"""Shared fixtures: one local[2] SparkSession per test session, real MovieLens data, job runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import ML_SMALL, ROOT, SUBMITTED_PREPARE, load_job, tiny_train


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


@pytest.fixture(scope="session")
def trained(prepared_small, tmp_path_factory) -> Path:
    """jobs/train.py with TINY_TRAIN on prepared_small, trained once for the training and evaluation
    tests; they read it, and copy it to write into it."""
    output = tmp_path_factory.mktemp("trained") / "model"
    tiny_train(load_job("train"), prepared_small, output)
    return output


@dataclass
class Submitted:
    output: Path
    console: str


@pytest.fixture(scope="session")
def submitted_prepare(ml_small, tmp_path_factory) -> Submitted:
    """prepare on ml-latest-small as a user runs it: sparkrec-submit from the project root, on
    conf/spark/local.conf (local[2]). The console tests read what it printed; the cluster tests
    compare their runs with what it wrote (a run costs about a minute of both cores)."""
    output = tmp_path_factory.mktemp("submitted") / "prepared"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "sparkrec-submit"),
            "jobs/prepare.py",
            "--input",
            str(ml_small),
            "--output",
            str(output),
            *SUBMITTED_PREPARE,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Submitted(output, result.stdout + result.stderr)


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
    subprocess.run(
        [str(ROOT / "scripts" / "package.sh"), "code"],
        env={**os.environ, "DIST": str(dist)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return dist / "sparkrec.zip"
