"""Reading MovieLens: which release a directory holds, header checks, declared schemas, the raw-input cache.

Every release is read into the same columns (sparkrec/core/columns.py) with our genre names, so
validation and everything after it read all releases alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C
from sparkrec.core import storage
from sparkrec.core.errors import SparkrecError
from sparkrec.core.runinfo import sha256_file
from sparkrec.prepare import features, releases

REQUIRED = ("ratings", "movies")
# Tables the prepare job parses; the other files are checked and fingerprinted only.
PARSED = ("ratings", "movies", "tags", "links")
KAGGLE_TIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
# Bump when parsing changes, so cached raw Parquet from older code is not reused.
CACHE_VERSION = "2"


class InputError(SparkrecError):
    """An input directory the job cannot use: no known release, a missing file or column."""


@dataclass
class InputFile:
    table: str
    name: str
    path: str
    size: int
    sha256: str | None = None


@dataclass
class MovieLensInput:
    release: releases.Release
    detected_by: str  # the files that decided the release
    files: dict[str, InputFile] = field(default_factory=dict)

    @property
    def layout(self) -> str:
        return self.release.layout

    def format(self, table: str) -> releases.FileFormat:
        return self.release.files[table]

    def schema(self, table: str) -> T.StructType:
        return self.format(table).schema


def locate(spark: SparkSession, directory: str) -> MovieLensInput:
    """Recognise the release from the file names; fail naming the first missing required file."""
    directory = directory.rstrip("/")
    if not storage.is_dir(spark, directory):
        raise InputError(f"input directory not found: {directory}")
    present = set(storage.children(spark, directory))
    found = releases.matching(present)
    if not found:
        raise InputError(f"{directory}: no MovieLens release recognised; looked for {releases.looked_for()}")
    if len(found) > 1:
        both = "; ".join(f"{release.label} ({why})" for release, why in found)
        raise InputError(f"{directory}: holds files of more than one MovieLens release: {both}")
    release, why = found[0]
    source = MovieLensInput(release, why)
    for table, file in release.files.items():
        path = f"{directory}/{file.name}"
        if file.name in present:
            source.files[table] = InputFile(table, file.name, path, storage.file_size(spark, path))
        elif table in REQUIRED:
            raise InputError(f"{path}: required file missing ({release.layout} layout)")
    return source


def check_headers(spark: SparkSession, found: MovieLensInput) -> None:
    """Fail before any work if a CSV lacks a declared column, or u.genre is not u.item's flag order."""
    for table, file in found.files.items():
        if found.format(table).header:
            check_header(spark, file.path, found.schema(table))
    if "genre_list" in found.files:
        check_genre_list(spark, found.files["genre_list"].path)


def check_header(spark: SparkSession, path: str, schema: T.StructType) -> None:
    header = [name.strip() for name in storage.read_first_line(spark, path).split(",")]
    missing = [f.name for f in schema.fields if f.name not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} in header {','.join(header)}")
    if header[: len(schema.fields)] != schema.fieldNames():
        raise InputError(
            f"{path}: header {','.join(header)} is not in the expected order {','.join(schema.fieldNames())}"
        )


def check_genre_list(spark: SparkSession, path: str) -> None:
    """u.genre (`name|index` lines) names u.item's flag columns; they are read in ML100K_GENRES' order."""
    listed = [line.strip() for line in storage.read_text(spark, path).splitlines() if line.strip()]
    expected = [f"{genre}|{index}" for index, genre in enumerate(releases.ML100K_GENRES)]
    if listed != expected:
        raise InputError(f"{path}: lists {' '.join(listed)}; u.item's flags are read as {' '.join(expected)}")


def fingerprint(found: MovieLensInput) -> None:
    """Record each local file's sha256 (the manifest's and the raw cache's key)."""
    for file in found.files.values():
        if storage.is_local(file.path):
            file.sha256 = sha256_file(storage.local_path(file.path))


def read_csv(spark: SparkSession, path: str, file: releases.FileFormat, encoding: str) -> DataFrame:
    """Parse with a declared schema; lines that do not fit land in `_corrupt_record`."""
    with_corrupt = T.StructType(file.schema.fields + [T.StructField(C.CORRUPT, T.StringType())])
    return (
        spark.read.option("header", file.header)
        .option("sep", file.sep)
        .option("encoding", encoding)
        .option("quote", file.quote or "")
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", C.CORRUPT)
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
    # try_to_timestamp: under Spark 4's default ANSI mode unix_timestamp raises on a bad string,
    # and one bad line would fail the whole run.
    seconds = F.unix_seconds(F.try_to_timestamp(F.col(C.TIMESTAMP), F.lit(KAGGLE_TIME_FORMAT)))
    return frame.withColumn(C.TIMESTAMP, seconds.cast(T.LongType()))


def our_genres(genres: Column) -> Column:
    """A pipe-separated genre list in our names (releases.GENRE_NAMES); a name not there is kept
    as it is, for validation to quarantine."""
    names = F.create_map(*[F.lit(text) for pair in releases.GENRE_OF.items() for text in pair])
    return F.array_join(F.transform(features.genre_list(genres), lambda g: F.coalesce(names[g], g)), "|")


def flagged_genres() -> Column:
    """ML-100K's u.item flags as a genre list in our names, in u.genre's order; no flag set is
    "(no genres listed)", a flag other than 0 or 1 makes it null (a malformed row)."""
    flags = [F.col(flag) for flag in C.ML100K_FLAG_COLUMNS]
    ours = [F.lit(releases.GENRE_OF[name]) for name in releases.ML100K_GENRES]
    listed = F.array_join(F.array(*[F.when(flag == 1, genre) for flag, genre in zip(flags, ours)]), "|")
    valid = F.lit(True)
    for flag in flags:
        valid = valid & flag.isin(0, 1)
    return F.when(valid, F.when(listed != "", listed).otherwise(F.lit(C.NO_GENRES)))


def movie_columns(movies: DataFrame) -> DataFrame:
    """Any release's movies as `movieId, title, genres, release_year, _corrupt_record`.

    The year is the title's "(YYYY)"; a u.item title without one takes the year of its
    release date ("01-Jan-1995").
    """
    year = features.release_year(F.col(C.TITLE))
    corrupt = F.col(C.CORRUPT)
    if C.RELEASE_DATE in movies.columns:
        genres = flagged_genres()
        dated = F.regexp_extract(F.trim(F.col(C.RELEASE_DATE)), r"(\d{4})$", 1)
        year = F.coalesce(year, F.when(dated != "", dated.cast(T.IntegerType())))
        # A line whose flags are not 0/1 is quarantined as it was written. Naming every column
        # here also matters: Spark parses only the columns a query uses, and then does not see
        # that a line has too few fields.
        fields = [F.coalesce(F.col(name).cast(T.StringType()), F.lit("")) for name in C.U_ITEM_SCHEMA.fieldNames()]
        corrupt = F.coalesce(corrupt, F.when(genres.isNull(), F.concat_ws("|", *fields)))
    else:
        genres = our_genres(F.col(C.GENRES))
    return movies.select(
        C.MOVIE_ID, C.TITLE, genres.alias(C.GENRES), year.alias(C.RELEASE_YEAR), corrupt.alias(C.CORRUPT)
    )


def parse(spark: SparkSession, found: MovieLensInput, table: str) -> DataFrame:
    """One table in our columns: declared schema, epoch-second timestamps, movies as `movie_columns`."""
    frame = read_csv(spark, found.files[table].path, found.format(table), found.release.encoding)
    if table == "movies":
        frame = movie_columns(frame)
    return normalize_timestamps(frame, found.schema(table))


def read_table(spark: SparkSession, found: MovieLensInput, table: str, raw_cache: str | None) -> DataFrame:
    """One input table as `parse` gives it.

    With `raw_cache`, the parsed table is kept as Parquet keyed by the file's
    checksum and the layout, so later runs with other samples or seeds skip
    parsing. Each run writes its own staging copy and renames it in: two runs
    filling the same entry at once both end with a complete one.
    """
    file = found.files[table]
    if raw_cache and file.sha256:
        cached = f"{raw_cache.rstrip('/')}/v{CACHE_VERSION}-{table}-{found.layout}-{file.sha256[:32]}"
        if not storage.exists(spark, cached + "/_SUCCESS"):
            staging = f"{cached}.staging-{uuid.uuid4().hex}"
            parse(spark, found, table).write.mode("error").parquet(staging)
            try:
                storage.rename(spark, staging, cached)
            except OSError:
                if not storage.exists(spark, cached + "/_SUCCESS"):
                    raise
                storage.delete(spark, staging)  # another run filled the entry first
        return spark.read.parquet(cached)
    return parse(spark, found, table)
