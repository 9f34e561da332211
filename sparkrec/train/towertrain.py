"""What training the two-tower model needs beyond the shared fit loop: its examples, validation and test metrics.

The train split is read through Petastorm once and held as user histories
(`sparkrec.train.history`): one int32, two float32 per rating, 240 MB for ML-20M's
20 million. Every epoch cuts new examples from them. Validation is the
evaluation's own question on the training job's holdout: each holdout user
with a liked holdout movie ranks every catalogue movie not in their history,
scored by NDCG@k against those liked movies (`val_ndcg@k`, the default
early-stopping monitor), and the like head's accuracy and AUC on the holdout
ratings. After the fit, the like head's logit is scaled to fit the holdout's
labels (`calibrate_like`: the kept epoch is chosen by ranking, not by how well
its probabilities are calibrated). Test metrics read the like and rating heads
on the test ratings, each user placed by their whole train history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from sparkrec.core import columns as C
from sparkrec.core import metrics, ranking
from sparkrec.core.topk import top_k
from sparkrec.models import twotower
from sparkrec.models.optimizer import adam
from sparkrec.models.pairwise import INPUT_COLUMNS
from sparkrec.models.towers import TwoTower
from sparkrec.train.candidates import Sampler
from sparkrec.train.dataset import Feed, Holdout, Prepared
from sparkrec.train.fitting import Fitting
from sparkrec.train.history import Histories, example_count, fold_examples, global_batches
from sparkrec.train.negatives import read_catalogue

if TYPE_CHECKING:
    from sparkrec.train.config import TrainConfig

VALIDATION_K = 10
RATING_COLUMNS = (C.USER_IDX, C.MOVIE_IDX, C.LIKE, C.RATING)
MOVIE_SPEC = {
    name: (INPUT_COLUMNS[name], "float32" if name == twotower.GENRE_FLAGS else "int32")
    for name in twotower.MOVIE_INPUTS
}


def read_ratings(path: Path, holdout: Holdout | None = None, keep_holdout: bool = False) -> dict[str, np.ndarray]:
    """The split's user, movie, like and rating columns through Petastorm (one side of `holdout`)."""
    feed = Feed(
        path,
        {column: ((column,), "int32") for column in RATING_COLUMNS},
        {},
        1,
        holdout=holdout,
        keep_holdout=keep_holdout,
    )
    chunks = list(feed.chunks())
    return {column: np.concatenate([chunk[column] for chunk in chunks]) for column in RATING_COLUMNS}


def histories(ratings: dict[str, np.ndarray], user_count: int) -> Histories:
    return Histories.from_rows(
        ratings[C.USER_IDX], ratings[C.MOVIE_IDX], ratings[C.LIKE], ratings[C.RATING], user_count
    )


def merged(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {column: np.concatenate([part[column] for part in parts]) for column in RATING_COLUMNS}


@dataclass(frozen=True)
class Catalogue:
    """movies/ as the towers read it: movie-tower inputs per row, and each movie index's row."""

    inputs: dict[str, np.ndarray]
    column_of: np.ndarray  # movie_idx -> row of the catalogue (-1: none)

    @classmethod
    def read(cls, movies_dir: Path, movie_vocab: int) -> Catalogue:
        inputs = read_catalogue(movies_dir, MOVIE_SPEC)
        index = inputs[C.MOVIE_IDX][:, 0]
        column_of = np.full(movie_vocab, -1, np.int64)
        known = index != C.UNKNOWN_INDEX
        column_of[index[known]] = np.flatnonzero(known)
        return cls(inputs, column_of)


@dataclass(frozen=True)
class ExampleFeed:
    """Each epoch's fold examples as a tf.data stream; the epoch number seeds them, so a resumed run replays.

    Worker `part` of `parts` streams its part of every batch (`fold_examples`).
    """

    histories: Histories
    folds: int
    max_targets: int
    max_history: int
    batch_size: int
    seed: int
    sampler: Sampler | None = None
    part: int = 0
    parts: int = 1
    history_keep_min: float = 1.0

    @property
    def steps(self) -> int:
        return global_batches(example_count(self.histories, self.folds, self.max_targets), self.batch_size, self.parts)

    def batches(self, epoch: int):
        rng = np.random.default_rng([self.seed, epoch])
        # Its own stream: the examples are the same with or without sampled candidates.
        # Each worker draws its own negatives for its part of the batch.
        candidate_rng = np.random.default_rng([self.seed, epoch, 1] + ([self.part] if self.parts > 1 else []))
        for batch in fold_examples(
            self.histories,
            self.folds,
            self.max_targets,
            self.max_history,
            self.batch_size,
            rng,
            self.part,
            self.parts,
            self.history_keep_min,
        ):
            if self.sampler is None:
                yield batch.arrays()
            else:
                yield {**batch.arrays(), **self.sampler.sample(batch, candidate_rng).arrays()}

    def signature(self) -> dict[str, tf.TensorSpec]:
        int32 = ("history_movie", "target_movie", "target_position", "history_position", "candidate_movie")
        padded = ["history_movie", "history_like", "target_movie", "target_like", "target_rating"]
        if self.sampler is not None:
            padded += ["target_position", "history_position"]
        spec = {
            name: tf.TensorSpec((None, None), tf.int32 if name in int32 else tf.float32, name=name) for name in padded
        }
        if self.sampler is not None:
            spec["candidate_movie"] = tf.TensorSpec((None,), tf.int32, name="candidate_movie")
            spec["candidate_log_q"] = tf.TensorSpec((None,), tf.float32, name="candidate_log_q")
        return spec

    def dataset(self, first_epoch: int, epochs: int) -> tf.data.Dataset:
        signature = self.signature()

        def one_epoch(epoch):
            return tf.data.Dataset.from_generator(
                lambda e: self.batches(int(e)), output_signature=signature, args=(epoch,)
            )

        dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(self.steps * (epochs - first_epoch)))
        return dataset.prefetch(tf.data.AUTOTUNE)


def user_rows(histories: Histories, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (offsets, movies, likes) of the given users' whole histories, in the order given."""
    index, _, first = histories.spans(users)
    return np.append(first, len(index)), histories.movies[index], histories.likes[index]


def user_vectors(towers: TwoTower, histories: Histories, users: np.ndarray) -> np.ndarray:
    return towers.user_vectors(*user_rows(histories, users))


def ranking_ndcg(
    towers: TwoTower,
    histories: Histories,
    catalogue: Catalogue,
    users: np.ndarray,
    relevant: dict[int, np.ndarray],
    k: int,
    block: int = 256,
) -> float:
    """Mean NDCG@k of `users` ranking the catalogue minus their history, against their `relevant` columns."""
    lists = {}
    for start in range(0, len(users), block):
        chosen = users[start : start + block]
        offsets, movies, likes = user_rows(histories, chosen)
        keys = towers.keys(towers.user_vectors(offsets, movies, likes))
        rows = np.repeat(np.arange(len(chosen)), np.diff(offsets))
        columns = catalogue.column_of[movies]
        keys[rows[columns >= 0], columns[columns >= 0]] = -np.inf
        row, column, _, _ = top_k(keys, k)
        lists.update({int(user): column[row == i] for i, user in enumerate(chosen)})
    return ranking.mean_ranking_metrics(lists, {user: relevant[user] for user in lists}, k)[f"ndcg@{k}"]


def head_predictions(
    towers: TwoTower, histories: Histories, catalogue: Catalogue, rows: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(P(like), stars) of rated rows, each user placed by `histories`."""
    users, inverse = np.unique(rows[C.USER_IDX], return_inverse=True)
    vectors = user_vectors(towers, histories, users)
    return towers.heads(vectors, inverse, catalogue.column_of[rows[C.MOVIE_IDX]])


class RankingValidation(keras.callbacks.Callback):
    """Adds val_ndcg@k and the like head's val_like_accuracy / val_like_auc to each epoch's logs."""

    def __init__(
        self,
        pair: Callable[[], keras.Model],
        histories: Histories,
        catalogue: Catalogue,
        holdout: dict[str, np.ndarray],
        k: int,
        max_users: int,
        seed: int,
    ):
        super().__init__()
        self.pair, self.histories, self.catalogue, self.holdout, self.k = pair, histories, catalogue, holdout, k
        liked = holdout[C.LIKE] == 1
        self.relevant = _relevant(holdout[C.USER_IDX][liked], catalogue.column_of[holdout[C.MOVIE_IDX][liked]])
        users = np.array(sorted(self.relevant), dtype=np.int64)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        self.users = users

    def on_epoch_end(self, epoch, logs=None):
        towers = twotower.arrays(self.pair(), self.catalogue.inputs)
        logs[f"val_ndcg@{self.k}"] = ranking_ndcg(
            towers, self.histories, self.catalogue, self.users, self.relevant, self.k
        )
        like, _ = head_predictions(towers, self.histories, self.catalogue, self.holdout)
        labels = self.holdout[C.LIKE]
        logs["val_like_accuracy"] = metrics.accuracy(labels, like)
        logs["val_like_auc"] = metrics.roc_auc(labels, like)


def _relevant(users: np.ndarray, columns: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(users, kind="stable")
    users, columns = users[order], columns[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {int(group[0]): cols for group, cols in zip(np.split(users, bounds), np.split(columns, bounds))}


def test_metrics(
    pair: keras.Model, histories: Histories, catalogue: Catalogue, test: dict[str, np.ndarray], majority_class: float
) -> dict:
    """Like and rating metrics of the test ratings, each user placed by their whole train history."""
    towers = twotower.arrays(pair, catalogue.inputs)
    like, stars = head_predictions(towers, histories, catalogue, test)
    return {
        twotower.LIKE_OUTPUT: metrics.classification_report(test[C.LIKE], like),
        twotower.RATING_OUTPUT: metrics.regression_report(test[C.RATING], stars),
        "baselines": {"majority_accuracy": float(np.mean(test[C.LIKE] == majority_class))},
    }


def fitting(
    model: keras.Model,
    prepared: Prepared,
    config: TrainConfig,
    part: int = 0,
    parts: int = 1,
    reader: Callable[[], keras.Model] | None = None,
) -> Fitting:
    """The two-tower model's side of the fit loop: fold examples of train minus the holdout, ranking validation.

    Worker `part` of `parts` trains on its part of each batch; every worker reads
    the whole train split (a user's examples need the user's whole history) and
    validates and tests on all of it. `reader` gives the model those numpy
    measures read (default: `model`; sparkrec.train.replica passes an
    undistributed copy).
    """
    reader = reader or (lambda: model)
    holdout = Holdout(config.validation_fraction, config.seed)
    fit_part = read_ratings(prepared.split("train"), holdout)
    held = read_ratings(prepared.split("train"), holdout, keep_holdout=True)
    test = read_ratings(prepared.split("test"))
    users = prepared.vocab_sizes["user"]
    fit_histories = histories(fit_part, users)
    catalogue = Catalogue.read(prepared.root / "movies", prepared.vocab_sizes["movie"])
    trainer = twotower.Trainer(
        model,
        twotower.movie_table(catalogue.inputs, prepared.vocab_sizes["movie"]),
        dislike_weight=config.dislike_weight,
        like_weight=config.like_weight,
        rating_weight=config.tower_rating_weight,
    )
    trainer.compile(optimizer=adam(config.learning_rate, config.ema_momentum, fused=True))
    sampler = (
        Sampler.of(fit_histories, prepared.vocab_sizes["movie"], config.sampled_negatives)
        if config.sampled_negatives
        else None
    )
    feed = ExampleFeed(
        fit_histories,
        config.folds,
        config.max_targets,
        config.max_history,
        config.batch_size,
        config.seed,
        sampler,
        part,
        parts,
        config.history_keep_min,
    )
    validation = RankingValidation(
        reader, fit_histories, catalogue, held, VALIDATION_K, config.validation_users, config.seed
    )
    train_like_rate = float(np.concatenate([fit_part[C.LIKE], held[C.LIKE]]).mean())
    majority = 1.0 if train_like_rate >= 0.5 else 0.0
    monitor = {"ndcg": f"val_ndcg@{VALIDATION_K}", "accuracy": "val_like_accuracy", "auc": "val_like_auc"}
    calibration = {}

    def calibrate() -> None:
        # The kept epoch is chosen by ranking, and its like head is often overconfident by then.
        if config.calibrate_like and len(held[C.LIKE]):
            like, _ = head_predictions(twotower.arrays(reader(), catalogue.inputs), fit_histories, catalogue, held)
            calibration.update(twotower.calibrate_like(model, held[C.LIKE], like))

    def measure() -> dict:
        measured = test_metrics(reader(), histories(merged(fit_part, held), users), catalogue, test, majority)
        return {**measured, "calibration": calibration} if calibration else measured

    return Fitting(
        trainer=trainer,
        batches=lambda first: feed.dataset(first, config.epochs),
        steps=feed.steps,
        rows={"train": len(fit_histories), "validation": len(held[C.LIKE]), "test": len(test[C.LIKE])},
        monitor=(monitor[config.monitor], "max"),
        validation=None,
        measures=[validation],
        test=measure,
        importance=lambda: None,
        finish=calibrate,
    )
