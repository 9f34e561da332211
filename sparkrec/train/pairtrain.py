"""The paper and deep models' side of the fit: Petastorm feeds, test metrics, permutation importance.

The two-tower model's side is sparkrec.train.towertrain."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
import pyarrow.parquet as pq

from sparkrec.core import columns as C
from sparkrec.core import metrics
from sparkrec.models import pairwise as M
from sparkrec.train.callbacks import TestMetrics
from sparkrec.train.config import TrainConfig
from sparkrec.train.dataset import DataError, Feed, Holdout, Prepared, parquet_files
from sparkrec.train.fitting import Fitting
from sparkrec.train.negatives import NegativeSampler, pair_keys, popularity_cdf, read_catalogue, sampling_offsets


@dataclass(frozen=True)
class Feeds:
    """The three streams of one run and their row counts."""

    train: Feed
    validation: Feed
    test: Feed
    rows: dict[str, int]


def make_feeds(prepared: Prepared, model: keras.Model, config: TrainConfig) -> Feeds:
    """Train (shuffled, holdout removed), validation (the holdout, or test) and test feeds."""
    inputs = {name: (M.INPUT_COLUMNS[name], tensor.dtype) for name, tensor in zip(M.input_names(model), model.inputs)}
    targets = {name: M.OUTPUT_COLUMNS[name] for name in model.output_names}
    holdout = Holdout(config.validation_fraction, config.seed) if config.validation_fraction else None
    negatives = None
    if M.RANK_OUTPUT in targets:
        # Over the whole catalogue: every movie the scorer ranks, including any outside the movie vocabulary.
        catalogue = read_catalogue(prepared.root / "movies", inputs)
        rated = cdf = None
        # Uniform draws that may hit rated movies need no pass over train.
        if config.unrated_negatives or config.negative_popularity:
            users, movies = training_rows(prepared, holdout)
            if config.unrated_negatives:
                rated = np.unique(pair_keys(users, movies))
            if config.negative_popularity:
                counts = np.bincount(movies, minlength=prepared.vocab_sizes["movie"])
                cdf = popularity_cdf(counts[catalogue[C.MOVIE_IDX][:, 0]], config.negative_popularity)
        negatives = NegativeSampler(catalogue, config.negatives, config.seed, M.RANK_OUTPUT, rated, cdf)
    train = Feed(
        prepared.split("train"),
        inputs,
        targets,
        config.batch_size,
        shuffle_seed=config.seed,
        buffer_rows=config.shuffle_buffer_rows,
        negatives=negatives,
    )
    test = Feed(prepared.split("test"), inputs, targets, config.eval_batch_size)
    rows = {"train": prepared.rows["train"], "test": prepared.rows["test"]}
    if config.validation_fraction == 0:
        # The paper's protocol: the test split doubles as the validation set.
        rows["validation"] = rows["test"]
        return Feeds(train, test, test, rows)
    rows["validation"] = holdout.count(prepared.split("train"))
    rows["train"] -= rows["validation"]
    for side in ("train", "validation"):
        if not rows[side]:
            raise DataError(
                f"{prepared.split('train')}: validation_fraction={config.validation_fraction} leaves its {side} "
                "side empty; change validation_fraction (0 validates on test)"
            )
    train = dataclasses.replace(train, holdout=holdout)
    validation = dataclasses.replace(test, path=prepared.split("train"), holdout=holdout, keep_holdout=True)
    return Feeds(train, validation, test, rows)


def training_rows(prepared: Prepared, holdout: Holdout | None) -> tuple[np.ndarray, np.ndarray]:
    """User and movie indices of the train rows the model trains on (the holdout's are left out, as test's)."""
    users, movies = [], []
    for path in parquet_files(prepared.split("train")):
        table = pq.read_table(path, columns=[C.USER_IDX, C.MOVIE_IDX])
        user, movie = table[C.USER_IDX].to_numpy(), table[C.MOVIE_IDX].to_numpy()
        kept = np.ones(len(user), bool) if holdout is None else ~holdout.mask(user, movie)
        users.append(user[kept])
        movies.append(movie[kept])
    return np.concatenate(users), np.concatenate(movies)


def monitor_key(model: keras.Model, config: TrainConfig) -> tuple[str, Literal["min", "max"]]:
    """The validation log key early stopping watches, and whether higher is better."""
    if config.monitor == "loss":
        return f"val_{M.like_metric_key(model, 'loss')}", "min"
    return f"val_{M.like_metric_key(model, config.monitor)}", "max"


def keras_fitting(model: keras.Model, prepared: Prepared, config: TrainConfig) -> Fitting:
    """The paper and deep models: Feeds of rated rows (and sampled negatives), Keras' validation pass."""
    feeds = make_feeds(prepared, model, config)
    majority = 1.0 if train_like_rate(prepared) >= 0.5 else 0.0
    return Fitting(
        trainer=model,
        batches=lambda first: feeds.train.dataset(feeds.rows["train"], first, config.epochs),
        steps=-(-feeds.rows["train"] // config.batch_size),
        rows=feeds.rows,
        monitor=monitor_key(model, config),
        validation=feeds.validation.dataset(feeds.rows["validation"]),
        measures=[TestMetrics(feeds.test.dataset(feeds.rows["test"]))],
        test=lambda: test_metrics(model, feeds, config, majority),
        importance=lambda: permutation_importance(model, feeds.test, config),
        finish=lambda: undo_sampling_bias(model, feeds.train.negatives, prepared.vocab_sizes["movie"]),
    )


def undo_sampling_bias(model: keras.Model, negatives: NegativeSampler | None, movie_vocab: int) -> None:
    """After popularity-weighted negatives, add log q back so the rank head ranks by P(rated and liked)."""
    if negatives is None or negatives.cdf is None:
        return
    movie_idx = negatives.catalogue[C.MOVIE_IDX][:, 0]
    M.shift_rank_bias(model, sampling_offsets(negatives.cdf, movie_idx, movie_vocab))


def feed_arrays(feed: Feed, limit: int | None = None) -> tuple[dict, dict]:
    """Inputs and targets of a feed as whole numpy arrays (its first `limit` rows)."""
    xs, ys, seen = [], [], 0
    for x, y in feed.batches():
        xs.append(x)
        ys.append(y)
        seen += len(next(iter(y.values())))
        if limit is not None and seen >= limit:
            break
    x = {name: np.concatenate([part[name] for part in xs])[:limit] for name in xs[0]}
    y = {name: np.concatenate([part[name] for part in ys])[:limit].ravel() for name in ys[0]}
    return x, y


def predict(model: keras.Model, x: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    return {name: np.asarray(values).ravel() for name, values in outputs.items()}


def test_metrics(model: keras.Model, feeds: Feeds, config: TrainConfig, majority_class: float) -> dict:
    """Exact test metrics of the restored model, with the majority-class baseline beside them."""
    x, y = feed_arrays(feeds.test)
    predicted = predict(model, x, config.eval_batch_size)
    result = {
        M.LIKE_OUTPUT: metrics.classification_report(y[C.LIKE], predicted[M.LIKE_OUTPUT]),
        "baselines": {"majority_accuracy": float(np.mean(y[C.LIKE] == majority_class))},
    }
    if M.RATING_OUTPUT in predicted:
        result[M.RATING_OUTPUT] = metrics.regression_report(y[C.RATING], predicted[M.RATING_OUTPUT])
    return result


def train_like_rate(prepared: Prepared) -> float:
    """Share of likes among training rows, read column-wise from the Parquet files."""
    likes = [
        pq.read_table(path, columns=[C.LIKE])[C.LIKE].to_numpy() for path in parquet_files(prepared.split("train"))
    ]
    return float(np.concatenate(likes).mean())


def permutation_importance(model: keras.Model, feed: Feed, config: TrainConfig) -> dict:
    """Drop in test accuracy and AUC when one input's rows are shuffled, averaged over repeats."""
    x, y = feed_arrays(feed, limit=config.importance_rows)
    labels = y[C.LIKE]
    base = predict(model, x, config.eval_batch_size)[M.LIKE_OUTPUT]
    baseline = {"accuracy": metrics.accuracy(labels, base), "auc": metrics.roc_auc(labels, base)}
    rng = np.random.default_rng(config.seed)
    result = {}
    for name in M.input_names(model):
        drops = []
        for _ in range(config.importance_repeats):
            shuffled = {**x, name: x[name][rng.permutation(len(labels))]}
            p = predict(model, shuffled, config.eval_batch_size)[M.LIKE_OUTPUT]
            drops.append(
                (baseline["accuracy"] - metrics.accuracy(labels, p), baseline["auc"] - metrics.roc_auc(labels, p))
            )
        accuracy_drop, auc_drop = np.mean(drops, axis=0)
        result[name] = {
            "columns": list(M.INPUT_COLUMNS[name]),
            "accuracy_drop": float(accuracy_drop),
            "auc_drop": float(auc_drop),
        }
    ranked = dict(sorted(result.items(), key=lambda item: -item[1]["auc_drop"]))
    return {"rows": int(len(labels)), "repeats": config.importance_repeats, "baseline": baseline, "inputs": ranked}
