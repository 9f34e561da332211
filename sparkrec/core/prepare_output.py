"""A prepare job's output as the other jobs check it before they read it: its tables and its manifest.

Each job names the tables it reads and the error class it reports in; the
checks and their messages are these, whoever calls them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sparkrec.core import storage
from sparkrec.core.storage import Spark

MANIFEST = "manifest.json"


def require(spark: Spark, data_dir: str, tables: Sequence[str], error: type[Exception]) -> None:
    """Raise `error` naming the first of `tables` that is missing under `data_dir`."""
    for table in tables:
        if not storage.exists(spark, f"{data_dir}/{table}"):
            raise error(f"{data_dir}/{table} is missing: not a complete prepare output")


def read_manifest(spark: Spark, data_dir: str, error: type[Exception]) -> dict:
    """The manifest of a prepare output, a JSON object; `error` saying what is wrong otherwise."""
    require(spark, data_dir, [MANIFEST], error)
    path = f"{data_dir}/{MANIFEST}"
    try:
        manifest = json.loads(storage.read_text(spark, path))
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(manifest, dict):
        raise error(f"{path} is not a JSON object")
    return manifest


def vocab_sizes(manifest: dict, data_dir: str, names: Sequence[str], error: type[Exception]) -> dict[str, int]:
    """The manifest's size of each named vocabulary (n + 1: index 0 is unknown), each a positive integer."""
    path = f"{data_dir}/{MANIFEST}"
    sizes = manifest.get("vocab_sizes")
    if not isinstance(sizes, dict):
        raise error(f"{path} has no vocab_sizes")
    bad = [name for name in names if not isinstance(sizes.get(name), int) or sizes[name] < 1]
    if bad:
        raise error(f"{path}: vocab_sizes lacks a positive size for {', '.join(bad)}")
    return {name: sizes[name] for name in names}
