"""What Spark's Python workers receive, their per-process scorer cache, and the pandas UDF that scores.

The fast path ships the factorized tables (or a two-tower model's arrays) only,
so its workers never import TensorFlow; the generic path ships the model file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from sparkrec.core import console
from sparkrec.core.columns import SCORED_SCHEMA
from sparkrec.models import towers as retrieval
from sparkrec.score.factorize import Factorized
from sparkrec.score.keras_io import load_keras_model, scored_model
from sparkrec.score.scorers import FastScorer, KerasScorer, TwoTowerScorer, recommend_batch


@dataclass
class Payload:
    """Everything a Python worker needs to score, broadcast once per job.

    The fast path ships the factorized tables (or a two-tower model's arrays)
    only, so its workers never import TensorFlow; the generic path ships the
    model file and the catalogue's model inputs.
    """

    key: tuple  # (model path, model sha256, data path, path, output name): what the scorer is built from
    movie_ids: np.ndarray  # catalogue movieIds, ascending: column j of every score matrix
    factorized: Factorized | None = None
    towers: retrieval.TwoTower | None = None
    movie_idx: np.ndarray | None = None  # each catalogue column's movie index (two-tower histories)
    fold_in: retrieval.FoldIn = retrieval.FoldIn()  # two-tower: fitting users outside the training sample
    model_bytes: bytes | None = None
    catalogue: dict[str, np.ndarray] = field(default_factory=dict)
    output_name: str = "like"
    batch_pairs: int = 65536


def build_scorer(payload: Payload):
    """The two-tower scorer, a FastScorer from the factorized tables, else a KerasScorer from the model file."""
    if payload.towers is not None:
        return TwoTowerScorer(payload.towers, payload.movie_ids, payload.movie_idx, payload.fold_in)
    if payload.factorized is not None:
        return FastScorer(payload.factorized, payload.movie_ids)
    _single_threaded_tensorflow()
    model = scored_model(load_keras_model(payload.model_bytes), payload.output_name)
    return KerasScorer(model, payload.catalogue, payload.movie_ids, payload.batch_pairs)


def _single_threaded_tensorflow() -> None:
    # The worker's first TensorFlow import: quiet at the log level the driver handed it (console).
    tf = console.import_tensorflow()
    # Spark already runs one Python worker per core; TensorFlow's own pools would oversubscribe.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already ran in this worker: its pools are fixed


# One scorer per Python worker process, kept across tasks, batches and jobs
# (Spark reuses workers); keyed by model path and checksum (and data, path,
# output) so any change rebuilds it, and holding one entry so memory stays bounded.
_SCORERS: dict[tuple, object] = {}


def worker_scorer(key: tuple, payload, loads) -> object:
    """The cached scorer for `key`, built from the broadcast `payload` on first use in this process."""
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = build_scorer(payload.value)
        loads.add(1)
    return _SCORERS[key]


@dataclass
class WorkerCounters:
    """Accumulators the pandas UDF adds to: scorer builds, Arrow batches, Python worker CPU seconds (all of it,
    and the part a two-tower scorer spent computing user vectors)."""

    loads: object
    batches: object
    cpu_seconds: object
    vector_seconds: object

    @classmethod
    def create(cls, spark: SparkSession) -> WorkerCounters:
        context = spark.sparkContext
        return cls(context.accumulator(0), context.accumulator(0), context.accumulator(0.0), context.accumulator(0.0))

    def values(self) -> dict:
        return {
            "scorer_loads": self.loads.value,
            "arrow_batches": self.batches.value,
            "worker_cpu_s": round(self.cpu_seconds.value, 3),
            "worker_user_vector_cpu_s": round(self.vector_seconds.value, 3),
        }


def recommend(frame: DataFrame, payload, key: tuple, k: int, block: int, counters: WorkerCounters) -> DataFrame:
    """SCORED_SCHEMA rows: each input user's top-k, scored in a pandas UDF over Arrow batches of users."""

    def score_batches(users: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # CPU time, not wall time: on a shared machine it still says what the scoring costs.
        started = time.process_time()
        scorer = worker_scorer(key, payload, counters.loads)
        vectors_before = scorer.vector_seconds
        for batch in users:
            counters.batches.add(1)
            yield recommend_batch(scorer, batch, k, block)
        counters.cpu_seconds.add(time.process_time() - started)
        counters.vector_seconds.add(scorer.vector_seconds - vectors_before)

    return frame.mapInPandas(score_batches, SCORED_SCHEMA)
