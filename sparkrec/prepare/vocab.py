"""Dense integer vocabularies: key -> index, 0 reserved for unknown or absent keys."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C


def build(spark: SparkSession, name: str, keys: Iterable) -> DataFrame:
    """Sorted distinct keys numbered from 1; a small frame, built on the driver."""
    key_col, idx_col = C.VOCABULARIES[name]
    ordered = sorted({k for k in keys if k is not None})
    key_type = T.StringType() if name in ("genre", "tag") else T.IntegerType()
    schema = T.StructType([T.StructField(key_col, key_type, False), T.StructField(idx_col, T.IntegerType(), False)])
    rows = [(k, i) for i, k in enumerate(ordered, start=1)]
    return spark.createDataFrame(rows, schema).coalesce(1)


def lookup(frame: DataFrame, vocabulary: DataFrame, key: str, index: str) -> DataFrame:
    """Add `index` for the value in column `key`, 0 where the key is absent from the vocabulary."""
    key_col, idx_col = vocabulary.columns
    mapping = vocabulary.select(F.col(key_col).alias("_key"), F.col(idx_col).alias(index))
    joined = frame.join(F.broadcast(mapping), frame[key] == mapping["_key"], "left").drop("_key")
    return joined.withColumn(index, F.coalesce(F.col(index), F.lit(C.UNKNOWN_INDEX)))


def size(vocabulary: DataFrame) -> int:
    """Embedding input size: the number of keys plus the reserved index 0."""
    return vocabulary.count() + 1
