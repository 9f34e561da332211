"""Our trained model as the evaluation measures it: its like output classifies, the scoring job's own scorer ranks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from sparkrec.core import columns as C
from sparkrec.core.runinfo import StageTimer
from sparkrec.evaluate import baselines
from sparkrec.evaluate.config import EvaluateConfig
from sparkrec.score.config import ScoreConfig
from sparkrec.score.keras_io import catalogue_inputs, load_keras_model, scored_model
from sparkrec.score.planning import Inputs, Plan, choose, read_inputs
from sparkrec.score.scorers import Block, TwoTowerScorer, watched_positions
from sparkrec.score.workers import build_scorer

# The test ratings ask P(like | rated): the like head's question, whichever output ranks.
CLASSIFIED_OUTPUT = C.LIKE


@dataclass
class Deep:
    """Our trained model: the like output for classification, the scoring job's scorer for ranking (plan.output)."""

    model: object  # keras.Model with the like output only
    ranker: object  # the scoring job's scorer: fast (factorized, two-tower) or generic (Keras) path
    plan: Plan
    inputs: Inputs
    batch_size: int
    name: str  # the model's own name (twotower, deep, paper): its row in every table
    histories: pd.DataFrame | None = None  # EvalData.users: what a two-tower model places each user by

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        frame = rows.toPandas()
        if isinstance(self.ranker, TwoTowerScorer):
            probability = self.tower_probabilities(frame)
        else:
            feed = catalogue_inputs(self.model, frame)
            feed[C.USER_IDX] = frame[C.USER_IDX].to_numpy(dtype=np.int32).reshape(-1, 1)
            probability = np.asarray(self.model.predict(feed, batch_size=self.batch_size, verbose=0), dtype=np.float64)
            probability = probability.reshape(-1)
        return pd.DataFrame(
            {
                C.USER_ID: frame[C.USER_ID],
                C.MOVIE_ID: frame[C.MOVIE_ID],
                baselines.PROBABILITY: probability,
                baselines.PREDICTED: (probability >= 0.5).astype(int),
            }
        )

    def tower_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """The like head on each row, the user placed by their train history (as they are ranked)."""
        users = self.histories.set_index(C.USER_ID).loc[np.unique(frame[C.USER_ID])].reset_index()
        _, rows, cols, liked = watched_positions(users, self.ranker.movie_ids)
        block = Block(users[C.USER_IDX].to_numpy(dtype=np.int64), rows, cols, liked)
        vectors = self.ranker.vectors(block)
        at = np.searchsorted(users[C.USER_ID].to_numpy(), frame[C.USER_ID].to_numpy())
        columns = np.searchsorted(self.ranker.movie_ids, frame[C.MOVIE_ID].to_numpy())
        return self.ranker.towers.heads(vectors, at, columns)[0]

    def scorer(self):
        return self.ranker

    def details(self) -> dict:
        return {
            "model_dir": self.inputs.model_dir,
            "model_sha256": self.inputs.model_sha256,
            "scoring_path": self.plan.path,
            "scoring_kernel": self.plan.kernel,
            "ranking_output": self.plan.output,
        }


def load_deep(spark: SparkSession, data_dir: str, model_dir: str, config: EvaluateConfig, timer: StageTimer) -> Deep:
    """The model through the scoring job's checks (files, vocabularies, embedding sizes) and its default scorer."""
    with timer.stage("extract"):
        inputs = read_inputs(spark, data_dir, model_dir)
    with timer.stage("model"):
        defaults = ScoreConfig()
        plan = choose(inputs, defaults.path, defaults.output_name, defaults.generic_batch_pairs, defaults.fold_in)
    loaded = load_keras_model(inputs.model_bytes)
    # A two-tower model classifies through its towers' arrays (Deep.tower_probabilities).
    model = scored_model(loaded, CLASSIFIED_OUTPUT)
    return Deep(model, build_scorer(plan.payload), plan, inputs, config.predict_batch_size, loaded.name)
