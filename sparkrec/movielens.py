"""Reading MovieLens CSVs: file layouts, header checks, declared schemas, the raw-input cache."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec import columns as C
from sparkrec import storage
from sparkrec.runinfo import sha256_file

# Logical table -> file name, for the two layouts MovieLens 20M is distributed in.
LAYOUTS = {
    "grouplens": {
        "ratings": "ratings.csv",
        "movies": "movies.csv",
        "tags": "tags.csv",
        "links": "links.csv",
        "genome_scores": "genome-scores.csv",
        "genome_tags": "genome-tags.csv",
    },
    "kaggle": {
        "ratings": "rating.csv",
        "movies": "movie.csv",
        "tags": "tag.csv",
        "links": "link.csv",
        "genome_scores": "genome_scores.csv",
        "genome_tags": "genome_tags.csv",
    },
}
REQUIRED = ("ratings", "movies")
# Tables the prepare job parses; genome files are checked and fingerprinted only.
PARSED = ("ratings", "movies", "tags", "links")

SCHEMAS = {
    "grouplens": {
        "ratings": C.RATINGS_SCHEMA,
        "movies": C.MOVIES_SCHEMA,
        "tags": C.TAGS_SCHEMA,
        "links": C.LINKS_SCHEMA,
        "genome_scores": C.GENOME_SCORES_SCHEMA,
        "genome_tags": C.GENOME_TAGS_SCHEMA,
    },
    "kaggle": {
        "ratings": C.RATINGS_SCHEMA_KAGGLE,
        "movies": C.MOVIES_SCHEMA,
        "tags": C.TAGS_SCHEMA_KAGGLE,
        "links": C.LINKS_SCHEMA,
        "genome_scores": C.GENOME_SCORES_SCHEMA,
        "genome_tags": C.GENOME_TAGS_SCHEMA,
    },
}
KAGGLE_TIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
# Bump when parsing changes, so cached raw Parquet from older code is not reused.
CACHE_VERSION = "1"


class InputError(ValueError):
    """An input directory the job cannot use: a missing file or column."""


@dataclass
class InputFile:
    table: str
    name: str
    path: str
    size: int
    sha256: str | None = None


@dataclass
class MovieLensInput:
    layout: str
    files: dict[str, InputFile] = field(default_factory=dict)

    def schema(self, table: str) -> T.StructType:
        return SCHEMAS[self.layout][table]


def locate(spark: SparkSession, directory: str) -> MovieLensInput:
    """Find the layout and the present files; fail naming the first missing required one."""
    directory = directory.rstrip("/")
    if not storage.exists(spark, directory):
        raise InputError(f"input directory not found: {directory}")
    layout = next(
        (name for name, files in LAYOUTS.items() if storage.exists(spark, f"{directory}/{files['ratings']}")),
        "grouplens",
    )
    found = MovieLensInput(layout)
    for table, name in LAYOUTS[layout].items():
        path = f"{directory}/{name}"
        if storage.exists(spark, path):
            found.files[table] = InputFile(table, name, path, storage.file_size(spark, path))
        elif table in REQUIRED:
            raise InputError(f"{path}: required file missing ({layout} layout)")
    return found


def check_headers(spark: SparkSession, found: MovieLensInput) -> None:
    """Fail before any work if a file lacks a declared column."""
    for table, file in found.files.items():
        header = [name.strip() for name in storage.read_first_line(spark, file.path).split(",")]
        missing = [f.name for f in found.schema(table).fields if f.name not in header]
        if missing:
            raise InputError(f"{file.path}: missing column(s) {', '.join(missing)} in header {','.join(header)}")
        if header[: len(found.schema(table).fields)] != found.schema(table).fieldNames():
            raise InputError(
                f"{file.path}: header {','.join(header)} is not in the expected order "
                f"{','.join(found.schema(table).fieldNames())}"
            )


def fingerprint(found: MovieLensInput) -> None:
    """Record each local file's sha256 (the manifest's and the raw cache's key)."""
    for file in found.files.values():
        if storage.is_local(file.path):
            file.sha256 = sha256_file(storage.local_path(file.path))


def read_csv(spark: SparkSession, path: str, schema: T.StructType) -> DataFrame:
    """Parse with a declared schema; lines that do not fit land in `_corrupt_record`."""
    with_corrupt = T.StructType(schema.fields + [T.StructField(C.CORRUPT, T.StringType())])
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", C.CORRUPT)
        .option("escape", '"')
        .option("multiLine", False)
        .schema(with_corrupt)
        .csv(path)
    )


def normalize_timestamps(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """Kaggle's "YYYY-MM-DD HH:MM:SS" strings become epoch seconds (UTC session zone).

    A string that does not parse becomes null and is quarantined as malformed.
    """
    if C.TIMESTAMP not in schema.fieldNames() or schema[C.TIMESTAMP].dataType != T.StringType():
        return frame
    seconds = F.unix_timestamp(F.col(C.TIMESTAMP), KAGGLE_TIME_FORMAT)
    return frame.withColumn(C.TIMESTAMP, seconds.cast(T.LongType()))


def read_table(spark: SparkSession, found: MovieLensInput, table: str, raw_cache: str | None) -> DataFrame:
    """One input table as declared columns plus `_corrupt_record`.

    With `raw_cache`, the parsed CSV is kept as Parquet keyed by the file's
    checksum, so later runs with other samples or seeds skip CSV parsing. Each
    run writes its own staging copy and renames it in: two runs filling the
    same entry at once both end with a complete one.
    """
    file = found.files[table]
    schema = found.schema(table)
    if raw_cache and file.sha256:
        cached = f"{raw_cache.rstrip('/')}/v{CACHE_VERSION}-{table}-{file.sha256[:32]}"
        if not storage.exists(spark, cached + "/_SUCCESS"):
            staging = f"{cached}.staging-{uuid.uuid4().hex}"
            normalize_timestamps(read_csv(spark, file.path, schema), schema).write.mode("error").parquet(staging)
            try:
                storage.rename(spark, staging, cached)
            except OSError:
                if not storage.exists(spark, cached + "/_SUCCESS"):
                    raise
                storage.delete(spark, staging)  # another run filled the entry first
        return spark.read.parquet(cached)
    return normalize_timestamps(read_csv(spark, file.path, schema), schema)
