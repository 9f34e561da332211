"""The prepare pipeline: MovieLens files -> validated interactions -> sampled, split Petastorm datasets.

`jobs/prepare.py` calls these stages in order; each takes and returns plain
values so tests can run any of them alone.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C
from sparkrec.core import runinfo, storage
from sparkrec.core.runinfo import StageTimer
from sparkrec.prepare import features, figures, movielens, petastorm_io, sampling, validation, vocab
from sparkrec.prepare.config import PrepareConfig


@dataclass
class Extracted:
    source: movielens.MovieLensInput
    frames: dict[str, DataFrame]


@dataclass
class Validated:
    classified: dict[str, DataFrame]
    counts: dict[str, dict[str, int]]

    def good(self, table: str) -> DataFrame | None:
        frame = self.classified.get(table)
        return None if frame is None else validation.good(frame)


@dataclass
class Prepared:
    """Everything the load stage writes; DataFrames are lazy over the cached, validated inputs."""

    source: movielens.MovieLensInput
    validated: Validated
    quarantine: DataFrame
    interactions: DataFrame
    users: list[int]
    sampled: DataFrame
    train: DataFrame
    test: DataFrame
    movies: DataFrame
    vocabularies: dict[str, DataFrame]


# --- extract ---------------------------------------------------------------


def extract(spark: SparkSession, input_dir: str, config: PrepareConfig, timer: StageTimer) -> Extracted:
    """Locate and check the input files, fingerprint them, and declare the parsed tables (lazily)."""
    with timer.stage("extract"):
        return _extract(spark, input_dir, config)


def _extract(spark: SparkSession, input_dir: str, config: PrepareConfig) -> Extracted:
    source = movielens.locate(spark, input_dir)
    movielens.check_headers(spark, source)
    movielens.fingerprint(source)
    frames = {
        table: movielens.read_table(spark, source, table, config.raw_cache)
        for table in movielens.PARSED
        if table in source.files
    }
    return Extracted(source, frames)


# --- transform -------------------------------------------------------------


def validate(extracted: Extracted) -> Validated:
    """Classify every row of every parsed table; cached so each table is parsed once."""
    movies = validation.classify_movies(extracted.frames["movies"]).cache()
    known = validation.good(movies)
    classifiers = {
        "ratings": functools.partial(validation.classify_ratings, whole_stars=extracted.source.release.whole_stars),
        "tags": validation.classify_tags,
        "links": validation.classify_links,
    }
    classified = {"movies": movies}
    for table, classify in classifiers.items():
        if table in extracted.frames:
            classified[table] = classify(extracted.frames[table], known).cache()
    counts = {table: validation.reason_counts(frame) for table, frame in classified.items()}
    return Validated(classified, counts)


def quarantine(validated: Validated, source: movielens.MovieLensInput) -> DataFrame:
    parts = [validation.quarantined(frame, source.files[table].name) for table, frame in validated.classified.items()]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union


def check_not_empty(validated: Validated, source: movielens.MovieLensInput) -> None:
    """A required file without data rows fails before anything is written."""
    for table in movielens.REQUIRED:
        if not sum(validated.counts[table].values()):
            header = ", only a header" if source.format(table).header else ""
            raise movielens.InputError(f"{source.files[table].path}: no data rows{header}")


def check_quality(validated: Validated, source: movielens.MovieLensInput, config: PrepareConfig) -> None:
    """Each file's rejected share within max_bad_fraction, and a valid row in every required file."""
    for table, counts in validated.counts.items():
        validation.check_bad_fraction(source.files[table].name, counts, config.max_bad_fraction)
    for table in movielens.REQUIRED:
        counts = validated.counts[table]
        if not counts.get("ok"):
            raise movielens.InputError(
                f"{source.files[table].path}: none of its {sum(counts.values()):,} rows is valid (see quarantine/)"
            )


def check_splits(sampled: DataFrame, users: int, source: movielens.MovieLensInput, config: PrepareConfig) -> None:
    """Fail before anything is written when the sample's train or test split would be empty.

    Counted on the cached sample: the split reads only its keys and timestamps.
    """
    sizes = {bool(row[0]): row[1] for row in split(sampled, config).groupBy(sampling.IS_TEST).count().collect()}
    for name, is_test in (("train", False), ("test", True)):
        if not sizes.get(is_test):
            raise movielens.InputError(
                f"{source.files['ratings'].path}: the {name} split of the {users:,} sampled users would be empty "
                f"(split={config.split}, test_fraction={config.test_fraction})"
            )


def movie_table(validated: Validated, config: PrepareConfig) -> DataFrame:
    return features.movie_features(validated.good("movies"), validated.good("tags"), config.top_tags)


def enrich(validated: Validated, movies: DataFrame, config: PrepareConfig) -> DataFrame:
    return features.interactions(validated.good("ratings"), movies, config.like_threshold)


def sample(spark: SparkSession, validated: Validated, config: PrepareConfig) -> tuple[list[int], DataFrame]:
    """The sampled users and their labelled ratings; movie features join later, once per movie."""
    ratings = validated.good("ratings")
    users = sampling.sample_users(ratings, config.user_count, config.seed)
    chosen = spark.createDataFrame([(u,) for u in users], T.StructType([T.StructField(C.USER_ID, T.IntegerType())]))
    sampled = features.labelled(ratings.join(F.broadcast(chosen), C.USER_ID, "inner"), config.like_threshold)
    # Cached: the vocabularies, both splits and the figures all read the sample.
    return users, sampled.cache()


def build_vocabularies(
    spark: SparkSession, users: list[int], sampled: DataFrame, movies: DataFrame
) -> dict[str, DataFrame]:
    """Vocabularies of the sample: its users, the movies they rated, and those movies' genres, years, tags."""
    rated = movies.join(sampled.select(C.MOVIE_ID).distinct(), C.MOVIE_ID, "left_semi")
    rows = rated.select(C.MOVIE_ID, C.GENRE1, C.GENRE2, C.RELEASE_YEAR, C.TAGS).collect()
    return {
        "user": vocab.build(spark, "user", users),
        "movie": vocab.build(spark, "movie", (m[C.MOVIE_ID] for m in rows)),
        "genre": vocab.build(spark, "genre", [g for m in rows for g in (m[C.GENRE1], m[C.GENRE2])]),
        "year": vocab.build(spark, "year", (m[C.RELEASE_YEAR] for m in rows)),
        "tag": vocab.build(spark, "tag", [t for m in rows for t in m[C.TAGS]]),
    }


def index_movies(frame: DataFrame, vocabularies: dict[str, DataFrame]) -> DataFrame:
    """Add the movie-side dense indices (movie, genre1/2, year, top tags)."""
    indexed = vocab.lookup(frame, vocabularies["movie"], C.MOVIE_ID, C.MOVIE_IDX)
    indexed = vocab.lookup(indexed, vocabularies["genre"], C.GENRE1, C.GENRE1_IDX)
    indexed = vocab.lookup(indexed, vocabularies["genre"], C.GENRE2, C.GENRE2_IDX)
    indexed = vocab.lookup(indexed, vocabularies["year"], C.RELEASE_YEAR, C.YEAR_IDX)
    for position, column in enumerate(C.TAG_IDX_COLUMNS):
        indexed = indexed.withColumn(f"_tag{position}", F.get(F.col(C.TAGS), position))
        indexed = vocab.lookup(indexed, vocabularies["tag"], f"_tag{position}", column).drop(f"_tag{position}")
    return indexed


def to_split_schema(frame: DataFrame, seed: int, files: int) -> DataFrame:
    """Cast to the Petastorm contract, pre-shuffled by a seeded hash so each file is a random slice.

    Hash partitioning on the hash, not a range: a range needs a sampling pass over the input first.
    """
    casts = [F.col(f.name).cast(f.dataType).alias(f.name) for f in C.SPLIT_SCHEMA.fields]
    order = F.xxhash64(F.lit(seed), F.col(C.USER_ID), F.col(C.MOVIE_ID))
    return (
        frame.select(*casts, order.alias("_order"))
        .repartition(files, "_order")
        .sortWithinPartitions("_order")
        .drop("_order")
    )


def split(indexed: DataFrame, config: PrepareConfig) -> DataFrame:
    return sampling.split(indexed, config.split, config.test_fraction, config.seed)


def catalogue(indexed_movies: DataFrame) -> DataFrame:
    """The movie feature table scoring reads: every catalogue movie with its indices."""
    return indexed_movies.select(*C.MOVIE_FEATURE_COLUMNS).orderBy(C.MOVIE_ID).coalesce(1)


def transform(spark: SparkSession, extracted: Extracted, config: PrepareConfig, timer: StageTimer) -> Prepared:
    """Validate, join, sample, index and split; only the small vocabularies and user list are collected."""
    with timer.stage("validate"):
        validated = validate(extracted)
        for table, counts in validated.counts.items():
            timer.count(f"{table}_read", sum(counts.values()))
            timer.count(f"{table}_valid", counts.get("ok", 0))
        check_not_empty(validated, extracted.source)
    movies = movie_table(validated, config).cache()
    interactions = enrich(validated, movies, config)
    with timer.stage("sample"):
        users, sampled = sample(spark, validated, config)
        timer.count("sampled_users", len(users))
        # No user at all means no valid rating: load reports that once the quarantine is written.
        if users:
            check_splits(sampled, len(users), extracted.source, config)
        vocabularies = build_vocabularies(spark, users, sampled, movies)
    # Indexed once per catalogue movie (small, broadcast) rather than once per sampled rating.
    indexed_movies = index_movies(movies, vocabularies).cache()
    with_movies = sampled.join(F.broadcast(indexed_movies), C.MOVIE_ID, "inner")
    assigned = split(vocab.lookup(with_movies, vocabularies["user"], C.USER_ID, C.USER_IDX), config)
    return Prepared(
        source=extracted.source,
        validated=validated,
        quarantine=quarantine(validated, extracted.source),
        interactions=interactions,
        users=users,
        sampled=with_movies,
        train=to_split_schema(sampling.train_rows(assigned), config.seed, config.split_files),
        test=to_split_schema(sampling.test_rows(assigned), config.seed, config.split_files),
        movies=catalogue(indexed_movies),
        vocabularies=vocabularies,
    )


# --- load ------------------------------------------------------------------


def write_parquet(frame: DataFrame, path: str) -> None:
    frame.write.mode("error").parquet(path)


def write_vocabularies(vocabularies: dict[str, DataFrame], directory: str) -> dict[str, int]:
    sizes = {}
    for name, frame in vocabularies.items():
        write_parquet(frame, f"{directory}/{name}")
        sizes[name] = vocab.size(frame)
    return sizes


def write_figures(spark: SparkSession, sampled: DataFrame, directory: str) -> list[str]:
    with tempfile.TemporaryDirectory() as local:
        paths = figures.write(figures.distributions(sampled), local)
        names = [path.rsplit("/", 1)[-1] for path in paths]
        for path, name in zip(paths, names):
            storage.copy_from_local(spark, path, f"{directory}/{name}")
    return names


def count_written(spark: SparkSession, path: str) -> int:
    return spark.read.parquet(path).count()


def load(spark: SparkSession, prepared: Prepared, staging: str, config: PrepareConfig, timer: StageTimer) -> dict:
    """Write every output under `staging`; returns what the manifest records beyond rows and timings.

    The quarantine is written before the bad-row threshold is checked, so a
    failed run leaves it in the staging directory for inspection.
    """
    with timer.stage("quarantine"):
        write_parquet(prepared.quarantine, f"{staging}/quarantine")
        timer.count("quarantine", count_written(spark, f"{staging}/quarantine"))
    check_quality(prepared.validated, prepared.source, config)
    with timer.stage("interactions"):
        write_parquet(prepared.interactions, f"{staging}/interactions")
        timer.count("interactions", count_written(spark, f"{staging}/interactions"))
    with timer.stage("vocabularies"):
        sizes = write_vocabularies(prepared.vocabularies, f"{staging}/vocab")
    for name, frame in (("train", prepared.train), ("test", prepared.test)):
        with timer.stage(name):
            petastorm_io.write(spark, frame, storage.qualify(f"{staging}/{name}"), config.row_group_mb)
            timer.count(name, count_written(spark, f"{staging}/{name}"))
    with timer.stage("movies"):
        write_parquet(prepared.movies, f"{staging}/movies")
        timer.count("movies_table", count_written(spark, f"{staging}/movies"))
    names = []
    if config.figures:
        with timer.stage("figures"):
            names = write_figures(spark, prepared.sampled, f"{staging}/figures")
    return {"vocab_sizes": sizes, "figures": names, "sampled_user_ids_sha256": _digest(prepared.users)}


def _digest(users: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, users)).encode()).hexdigest()


def manifest(
    spark: SparkSession,
    config: PrepareConfig,
    input_dir: str,
    output: str,
    prepared: Prepared,
    timer: StageTimer,
    loaded: dict,
) -> dict:
    source = prepared.source
    quarantined = {
        source.files[table].name: {reason: n for reason, n in sorted(counts.items()) if reason != "ok"}
        for table, counts in prepared.validated.counts.items()
    }
    return {
        **runinfo.run_record("prepare", config, timer.seconds, spark),
        "input": {
            "directory": input_dir,
            "layout": source.layout,
            "release": source.release.label,
            "detected_by": source.detected_by,
            "encoding": source.release.encoding,
            "files": {
                table: {"name": f.name, "path": f.path, "bytes": f.size, "sha256": f.sha256}
                for table, f in source.files.items()
            },
        },
        "output": output,
        "rows": dict(timer.rows),
        "quarantine": quarantined,
        "seed": config.seed,
        **loaded,
    }
