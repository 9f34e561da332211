"""What the unit tests share beyond fixtures: imported by name, so no test imports conftest."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa
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
