"""What every run records about itself: library versions, stage timings, logging."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
