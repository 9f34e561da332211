"""What tests share beyond fixtures (paths, job loaders and runners, literal frames, tree digests), imported by name."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema


def frame(spark: SparkSession, schema: str | T.StructType, rows: Iterable[tuple]) -> DataFrame:
    """Literal rows under a declared schema (DDL or StructType).

    Declared, never inferred: assertDataFrameEqual compares schemas too, so an
    int that became a long, or a renamed column, fails as loudly as a wrong value.
    Passed as an Arrow table, the rows become a LocalRelation: a query on it runs
    about three times faster than on createDataFrame's RDD of pickled rows, and a
    NaN stays NaN (pandas would turn it into null).
    """
    struct = T.StructType.fromDDL(schema) if isinstance(schema, str) else schema
    records = [dict(zip(struct.names, row, strict=True)) for row in rows]
    table = pa.Table.from_pylist(records, schema=to_arrow_schema(struct))
    return spark.createDataFrame(table, struct)


def write_files(directory: Path, files: dict[str, str | bytes]) -> Path:
    """Files as given: str as UTF-8, bytes unchanged (for latin-1 and broken-UTF-8 fixtures)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return directory


ROOT = Path(__file__).resolve().parents[1]
# Real MovieLens data lives beside the repository (../shared/data), never inside it.
SHARED_DATA = Path(os.environ.get("SPARKREC_SHARED_DATA", ROOT.parent / "shared" / "data"))
ML_SMALL = SHARED_DATA / "ml-latest-small"


# jobs/train.py settings for a small, quick deep model: tests of the jobs, not of the model's quality
# (tests/test_twotower.py trains the default two-tower model).
TINY_TRAIN = [
    "--set",
    "model=deep",
    "--set",
    "epochs=2",
    "--set",
    "embedding_dim=16",
    "--set",
    "hidden_units=32",
    "--set",
    "importance_rows=3000",
    "--set",
    "importance_repeats=1",
    "--set",
    "eval_batch_size=4096",
    "--set",
    "shuffle_buffer_rows=40000",
    "--set",
    "keras_verbose=0",
]


def tiny_train(job, data: Path, output: Path, *overrides: str) -> dict:
    """jobs/train.py's main (the module `job`, as load_job gives it) with TINY_TRAIN and `overrides`."""
    return job.main(["--data", str(data), "--output", str(output), *TINY_TRAIN, *overrides])


# prepare's sample for the runs on ml-latest-small through spark-submit (tests/test_console.py, tests/test_cluster.py):
# 100 users keep each run short, and the same settings let the cluster runs compare with the local one.
SUBMITTED_PREPARE = ["--set", "sample_users=100"]


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


def run_job(name: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None):
    """Run jobs/<name>.py ARGS as a fresh process of this interpreter (environment `env`, or this
    process's), its stdout and stderr captured as text. Returns the CompletedProcess, unchecked."""
    command = [sys.executable, str(ROOT / "jobs" / f"{name}.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
