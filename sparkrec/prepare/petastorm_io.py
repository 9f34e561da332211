"""Writing the model-ready splits as Petastorm datasets."""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from sparkrec.core import columns as C
from sparkrec.core.petastorm_compat import ScalarCodec, Unischema, UnischemaField, materialize_dataset

_NUMPY_TYPES = {
    T.IntegerType(): np.int32,
    T.LongType(): np.int64,
    T.FloatType(): np.float32,
    T.ByteType(): np.int8,
}

SPLIT_UNISCHEMA = Unischema(
    "SparkrecInteraction",
    [
        UnischemaField(f.name, _NUMPY_TYPES[f.dataType], (), ScalarCodec(f.dataType), False)
        for f in C.SPLIT_SCHEMA.fields
    ],
)


def write(spark: SparkSession, frame: DataFrame, url: str, row_group_mb: int) -> None:
    """Write `frame` (already in SPLIT_SCHEMA column order and types) with Petastorm metadata.

    Scalar-only fields let Spark write the Parquet natively; materialize_dataset
    adds the Unischema to `_common_metadata` so `make_reader` can decode it.
    """
    with materialize_dataset(spark, url, SPLIT_UNISCHEMA, row_group_mb):
        frame.write.mode("error").parquet(url)
