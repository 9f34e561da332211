"""What every run records about itself: its record (settings, versions, session, timings), logging; the JSON writer."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sparkrec.core import storage
from sparkrec.core.config import to_dict
from sparkrec.core.storage import Spark

_PACKAGES = ("sparkrec", "pyspark", "pyarrow", "numpy", "pandas", "petastorm", "tensorflow-cpu", "keras")


def get_logger(name: str) -> logging.Logger:
    """A logger that prints `time level name: message` to stderr once per process."""
    root = logging.getLogger("sparkrec")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(f"sparkrec.{name}")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def sha256_file(path: str | Path, chunk_bytes: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class StageTimer:
    """Times named stages, logs each with its row count, and keeps both for the manifest."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        rows = self.rows.get(name)
        suffix = f", {rows:,} rows" if rows is not None else ""
        self.logger.info("stage %s done in %.1fs%s", name, self.seconds[name], suffix)

    def count(self, name: str, rows: int) -> int:
        self.rows[name] = int(rows)
        return self.rows[name]


def run_record(job: str, config: Any, timings: dict[str, float], spark: Spark = None) -> dict:
    """What every job records of its run beside its results: the job, when, the resolved settings, the
    library versions, the Spark session's facts (jobs with one) and the timings of its stages."""
    record = {
        "job": job,
        "created_unix": int(time.time()),
        "config": to_dict(config),
        "versions": library_versions(),
        "timings_s": dict(timings),
    }
    if spark is not None:
        record["versions"]["spark"] = spark.version
        record["spark"] = {
            "master": spark.sparkContext.master,
            "default_parallelism": spark.sparkContext.defaultParallelism,
            "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions")),
        }
    return record


def write_json(spark: Spark, path: str | Path, document: dict, sort_keys: bool = False) -> None:
    """A record or metrics document as indented JSON, through storage (local or Hadoop paths)."""
    storage.write_text(spark, str(path), json.dumps(document, indent=2, sort_keys=sort_keys) + "\n")
