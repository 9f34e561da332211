"""The scoring job's stages: extract -> plan -> transform -> load (`jobs/score.py`).

Each user's top-K unwatched catalogue movies, computed in Spark pandas UDFs.
Two ways to score a user against the catalogue, chosen per model
(sparkrec.score.planning):

- the fast path: the paper's model starts with a Dense layer over the
  concatenation of per-input embeddings, and a Dense layer over a concatenation
  is the sum of one projection per part (dropout is the identity at inference).
  So the user part is projected once per user-vocabulary entry and the movie
  parts once per catalogue movie, and scoring a block of users is dense array
  work (sparkrec.score.factorize, sparkrec.score.kernels); a two-tower model
  is a dot product of its towers' vectors;
- the generic path: the Keras model itself, called on explicit (user, movie)
  candidate pairs; slow, but it needs nothing of the model's structure.

Both feed the same exact top-K selection (sparkrec.core.topk): score
descending, ties by movieId ascending, watched movies never selected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from sparkrec.core import columns as C
from sparkrec.core import runinfo
from sparkrec.core.runinfo import StageTimer
from sparkrec.score.config import ScoreConfig, ScoreError
from sparkrec.score.planning import Inputs, Plan, choose, read_inputs
from sparkrec.score.users import (
    export_frame,
    input_counts,
    known_users,
    scoring_input,
    watched_sets,
    with_movie_details,
)
from sparkrec.score.workers import WorkerCounters, recommend

ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


@dataclass
class Scored:
    """The (lazy) recommendation table and what is known about it before it runs."""

    recommendations: DataFrame
    counts: dict[str, int]
    partitions: int
    counters: WorkerCounters
    cached: DataFrame  # the candidate sets, released once written


def extract(spark: SparkSession, data_dir: str, model_dir: str, timer: StageTimer) -> Inputs:
    """Check the prepared tables and the model directory; read the catalogue and the model file."""
    with timer.stage("extract"):
        return read_inputs(spark, data_dir, model_dir)


def plan(inputs: Inputs, config: ScoreConfig, timer: StageTimer) -> Plan:
    """Load the model, check it against the data, and choose the path (fast when it factorizes)."""
    with timer.stage("model"):
        return choose(inputs, config.path, config.output_name, config.generic_batch_pairs, config.fold_in)


def transform(spark: SparkSession, inputs: Inputs, plan: Plan, config: ScoreConfig, timer: StageTimer) -> Scored:
    """Build each user's candidate set (cached and counted), then declare the scoring over it."""
    partitions = config.partitions or 2 * spark.sparkContext.defaultParallelism
    with timer.stage("candidates"):
        watched = watched_sets(inputs.interactions, inputs.movies)
        chosen = scoring_input(watched, inputs.user_vocab, config.users, config.limit_users)
        # Cached already partitioned, so the timed scoring starts from memory without a shuffle.
        cached = chosen.repartition(partitions, C.USER_ID).cache()
        counts = input_counts(cached, len(inputs.catalogue), config.top_k)
        if config.unknown_users == "skip":
            frame = known_users(cached)
            scored_counts = input_counts(frame, len(inputs.catalogue), config.top_k)
        else:
            frame, scored_counts = cached, counts
    if not scored_counts["users"]:
        cached.unpersist()
        raise ScoreError(
            f"no user to score in {inputs.data_dir} (users={config.users}, unknown_users={config.unknown_users}, "
            f"{counts['users']:,} users requested)"
        )
    counts = {
        "users_requested": counts["users"],
        "users_unknown": counts["unknown"],
        "users_without_history": scored_counts["no_history"],
        "users_skipped": counts["users"] - scored_counts["users"],
        "users_scored": scored_counts["users"],
        "users_short": scored_counts["short"],
        "pairs": scored_counts["pairs"],
        "rows_expected": scored_counts["rows"],
    }
    payload = spark.sparkContext.broadcast(plan.payload)
    counters = WorkerCounters.create(spark)
    block = config.tower_block_users if plan.payload.towers is not None else config.block_users
    scored = recommend(frame, payload, plan.payload.key, config.top_k, block, counters)
    return Scored(with_movie_details(scored, inputs.movies), counts, partitions, counters, cached)


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a runtime SQL setting for the duration of a block, then restore it."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def load(spark: SparkSession, scored: Scored, staging: str, config: ScoreConfig, timer: StageTimer) -> dict:
    """Run the scoring into staging/recommendations (and the export); returns the written counts."""
    path = f"{staging}/recommendations"
    jvm_started = jvm_cpu_seconds(spark)
    with session_conf(spark, ARROW_BATCH, str(config.arrow_batch_users)), timer.stage("score"):
        scored.recommendations.write.mode("error").parquet(path)
    jvm_finished = jvm_cpu_seconds(spark)
    jvm_cpu = None if None in (jvm_started, jvm_finished) else round(jvm_finished - jvm_started, 3)
    scored.cached.unpersist()
    timer.count("recommendations", spark.read.parquet(path).count())
    if config.export != "none":
        with timer.stage("export"):
            writer = export_frame(spark.read.parquet(path)).write.mode("error")
            if config.export == "csv":
                writer.option("header", True).csv(f"{staging}/export")
            else:
                writer.json(f"{staging}/export")
    return {**scored.counters.values(), "score_jvm_cpu_s": jvm_cpu}


def jvm_cpu_seconds(spark: SparkSession) -> float | None:
    """CPU seconds used so far by the driver JVM (in local mode it runs the executors too); None if unknown."""
    duration = spark._jvm.java.lang.ProcessHandle.current().info().totalCpuDuration()
    return duration.get().toMillis() / 1000 if duration.isPresent() else None


def manifest(
    spark: SparkSession,
    config: ScoreConfig,
    inputs: Inputs,
    plan: Plan,
    scored: Scored,
    output: str,
    timer: StageTimer,
    loaded: dict,
) -> dict:
    record = runinfo.run_record("score", config, timer.seconds, spark)
    record["spark"][ARROW_BATCH] = config.arrow_batch_users
    return {
        **record,
        "data": inputs.data_dir,
        "model": {
            "directory": inputs.model_dir,
            "sha256": inputs.model_sha256,
            "bytes": len(inputs.model_bytes),
            "vocabularies_checked": inputs.vocabularies_checked,
        },
        "path": {"chosen": plan.path, "reason": plan.reason, "kernel": plan.kernel, "output": plan.output},
        "output": output,
        "catalogue_movies": len(inputs.catalogue),
        "users": {name[len("users_") :]: n for name, n in scored.counts.items() if name.startswith("users_")},
        "pairs_scored": scored.counts["pairs"],
        "pairs_per_second": _rate(scored.counts["pairs"], timer.seconds["score"]),
        # Per CPU second, what the scoring costs even on a machine shared with other jobs: the
        # Python workers' CPU inside the UDF, and in local mode also the JVM's during the stage.
        "pairs_per_worker_cpu_second": _rate(scored.counts["pairs"], loaded["worker_cpu_s"]),
        "pairs_per_cpu_second": _rate(scored.counts["pairs"], _local_cpu_seconds(spark, loaded)),
        "recommendations": {"rows": timer.rows["recommendations"], "expected": scored.counts["rows_expected"]},
        "partitions": scored.partitions,
        **loaded,
    }


def _rate(count: int, seconds: float | None) -> int | None:
    return round(count / seconds) if seconds else None


def _local_cpu_seconds(spark: SparkSession, loaded: dict) -> float | None:
    """Workers' plus JVM CPU of the score stage, when the JVM is the only executor (local mode)."""
    jvm = loaded["score_jvm_cpu_s"]
    if jvm is None or not spark.sparkContext.master.startswith("local"):
        return None
    return loaded["worker_cpu_s"] + jvm
