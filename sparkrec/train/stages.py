"""Training: settings, the fit loop and its callbacks, test metrics, importance, figures, outputs.

jobs/train.py drives three stages: `extract` (check the prepared data),
`transform` (fit, then measure on test) and `load` (write MODEL_DIR). Outputs
are built in MODEL_DIR.staging and renamed into place (`sparkrec.core.outputs`); the
resumable training state lives in MODEL_DIR.backup until the new model is in place.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keras
import matplotlib
import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from sparkrec.core import columns as C
from sparkrec.core import metrics, outputs
from sparkrec.models import towers as retrieval, twotower
from sparkrec.train import towertrain
from sparkrec.models import pairwise as M
from sparkrec.train.callbacks import TestMetrics
from sparkrec.train.fitting import Fitting, fit
from sparkrec.core.config import to_dict
from sparkrec.train.dataset import DataError, Feed, Holdout, Prepared, copy_vocabularies, open_prepared, parquet_files
from sparkrec.train.negatives import NegativeSampler, pair_keys, popularity_cdf, read_catalogue, sampling_offsets
from sparkrec.core import runinfo
from sparkrec.core.runinfo import get_logger, sha256_file

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sparkrec.train.config import TrainConfig

BACKUP_SUFFIX = ".backup"
log = get_logger("train")


# ----------------------------------------------------------------- runtime


def configure_runtime(config: TrainConfig) -> None:
    """Threads, seeds and deterministic kernels, before TensorFlow runs its first op."""
    try:
        if config.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
        if config.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(config.inter_op_threads)
    except RuntimeError:
        # Only possible when TensorFlow already ran in this process (tests): keep its pools.
        log.warning("TensorFlow is already initialised: thread settings left as they were")
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def build_model(config: TrainConfig, vocab_sizes: dict[str, int]) -> keras.Model:
    if config.model == "twotower":
        return twotower.build(vocab_sizes, config.tower_dim, config.tower_hidden, config.head_hidden)
    if config.model == "paper":
        return M.build_paper_model(
            vocab_sizes, loss=config.paper_loss, learning_rate=config.learning_rate, ema_momentum=config.ema_momentum
        )
    return M.build_deep_model(
        vocab_sizes,
        embedding_dim=config.embedding_dim,
        hidden_units=tuple(config.hidden_units),
        dropout=config.dropout,
        l2=config.l2,
        bias_terms=config.bias_terms,
        rating_weight=config.rating_weight,
        learning_rate=config.learning_rate,
        rank_weight=config.rank_weight if config.negatives else 0.0,
        rank_bias=config.rank_bias,
        ema_momentum=config.ema_momentum,
    )


# ----------------------------------------------------------------- feeds


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
        prepared.split("train"), inputs, targets, config.batch_size,
        shuffle_seed=config.seed, buffer_rows=config.shuffle_buffer_rows, negatives=negatives,
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


def prepare_backup(backup_dir: Path, fingerprint: dict) -> None:
    """Keep the backup only if it was made by the same settings on the same data.

    The job's output check has made sure a backup there is the training job's own.
    """
    path = backup_dir / "fingerprint.json"
    if backup_dir.exists() and (not path.is_file() or json.loads(path.read_text()) != fingerprint):
        log.warning("discarding %s: it was made with other settings or data", backup_dir)
        shutil.rmtree(backup_dir)
    outputs.mark(None, str(backup_dir), "train")
    path.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))


# ----------------------------------------------------------------- fit


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


@dataclass
class Trained:
    """What `transform` hands to `load`."""

    model: keras.Model
    config: TrainConfig
    rows: dict[str, int]
    history: list[dict]
    best_epoch: int
    monitor: str
    metrics: dict
    importance: dict | None
    seconds: dict[str, float]


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
    likes = [pq.read_table(path, columns=[C.LIKE])[C.LIKE].to_numpy() for path in parquet_files(prepared.split("train"))]
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
            drops.append((baseline["accuracy"] - metrics.accuracy(labels, p), baseline["auc"] - metrics.roc_auc(labels, p)))
        accuracy_drop, auc_drop = np.mean(drops, axis=0)
        result[name] = {"columns": list(M.INPUT_COLUMNS[name]), "accuracy_drop": float(accuracy_drop), "auc_drop": float(auc_drop)}
    ranked = dict(sorted(result.items(), key=lambda item: -item[1]["auc_drop"]))
    return {"rows": int(len(labels)), "repeats": config.importance_repeats, "baseline": baseline, "inputs": ranked}


# ----------------------------------------------------------------- stages


def extract(data_dir: str | Path) -> Prepared:
    """Open and check the prepared data (raises DataError with a one-line reason)."""
    return open_prepared(data_dir)


def transform(prepared: Prepared, config: TrainConfig, staging: Path, backup_dir: Path) -> Trained:
    """Fit, then measure the restored model on test: metrics and (paper, deep) permutation importance."""
    seconds = {}
    started = time.perf_counter()
    model = build_model(config, prepared.vocab_sizes)
    family = towertrain.fitting if config.model == "twotower" else keras_fitting
    fitting = family(model, prepared, config)
    prepare_backup(backup_dir, fingerprint(prepared, config))
    rows = fitting.rows
    log.info(
        "model %s: %s parameters; %s train / %s validation / %s test rows",
        config.model, f"{model.count_params():,}", f"{rows['train']:,}", f"{rows['validation']:,}", f"{rows['test']:,}",
    )
    state = fit(fitting, config, backup_dir, staging / "logs")
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    measured = fitting.test()
    importance = fitting.importance()
    seconds["evaluate"] = time.perf_counter() - started
    return Trained(model, config, rows, state.history, state.best()["epoch"], fitting.monitor[0], measured,
                   importance, seconds)


def load(trained: Trained, prepared: Prepared, staging: Path, command: list[str]) -> dict:
    """Write the model and everything needed to trust and reuse it into `staging`."""
    trained.model.save(staging / "model.keras")
    copy_vocabularies(prepared, staging)
    document = metrics_document(trained)
    runinfo.write_json(None, staging / "metrics.json", document)
    runinfo.write_json(None, staging / "run.json", run_document(trained, prepared, command))
    (staging / "figures").mkdir(exist_ok=True)
    plot_history(trained.history, history_panels(trained.model), trained.best_epoch, staging / "figures" / "training.png")
    if trained.importance is not None:
        runinfo.write_json(None, staging / "importance.json", trained.importance)
        plot_importance(trained.importance, staging / "figures" / "importance.png")
    return document


def fingerprint(prepared: Prepared, config: TrainConfig) -> dict:
    """What a backup must match to be resumed: the settings and the exact prepared data."""
    return {
        "config": to_dict(config),
        "data": str(prepared.root.resolve()),
        "manifest_sha256": sha256_file(prepared.root / "manifest.json"),
    }


def metrics_document(trained: Trained) -> dict:
    history = trained.history
    return {
        "model": trained.config.model,
        "test": trained.metrics,
        "best_epoch": trained.best_epoch + 1,
        "epochs_run": len(history),
        "monitor": trained.monitor,
        "rows": trained.rows,
        "rows_per_s": float(np.mean([entry["rows_per_s"] for entry in history])) if history else None,
        "history": history,
    }


def run_document(trained: Trained, prepared: Prepared, command: list[str]) -> dict:
    seconds = {name: round(value, 3) for name, value in trained.seconds.items()}
    return {
        **runinfo.run_record("train", trained.config, seconds),
        "command": command,
        "seed": trained.config.seed,
        "data": {
            "path": str(prepared.root.resolve()),
            "manifest_sha256": sha256_file(prepared.root / "manifest.json"),
            "vocab_sizes": prepared.vocab_sizes,
            "rows": prepared.rows,
            "prepare_config": prepared.manifest.get("config"),
        },
        "parameters": int(trained.model.count_params()),
    }


def summary_line(document: dict, output: Path, seconds: float) -> str:
    like = document["test"][M.LIKE_OUTPUT]
    return (
        f"train: {document['model']} model, {document['epochs_run']} epochs (best {document['best_epoch']}), "
        f"test accuracy {like['accuracy']:.4f} AUC {like['auc']:.4f} log loss {like['log_loss']:.4f}, "
        f"{document['rows_per_s'] or 0:,.0f} rows/s, {seconds:.0f}s -> {output}"
    )


# ----------------------------------------------------------------- figures


def history_panels(model: keras.Model) -> list[tuple[str, str]]:
    """(title, log key) of each panel of the training figure."""
    if retrieval.is_twotower(model):
        ndcg = f"ndcg@{towertrain.VALIDATION_K}"
        return [("like accuracy", "like_accuracy"), (f"ranking {ndcg}", ndcg), ("loss", "loss")]
    return [(f"like {metric}", M.like_metric_key(model, metric)) for metric in ("accuracy", "loss")]


def plot_history(history: list[dict], panels: list[tuple[str, str]], best_epoch: int, path: Path) -> None:
    """Each panel's log per epoch on train, validation and test (those logged): the paper's Figure 4."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
    epochs = [entry["epoch"] + 1 for entry in history]
    for axis, (title, key) in zip(axes, panels):
        for prefix, label in (("", "train"), ("val_", "validation"), ("test_", "test")):
            values = [entry.get(prefix + key) for entry in history]
            if all(value is not None for value in values):
                axis.plot(epochs, values, marker="o", label=label)
        axis.axvline(best_epoch + 1, color="grey", linestyle=":", label="kept epoch")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_importance(importance: dict, path: Path) -> None:
    names = list(importance["inputs"])[::-1]
    drops = [importance["inputs"][name]["auc_drop"] for name in names]
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    axis.barh(names, drops)
    axis.set_xlabel("test AUC drop when the input is shuffled")
    axis.set_title(f"Permutation importance ({importance['rows']:,} test rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ----------------------------------------------------------------- resumable state


def backup_path(output: Path) -> Path:
    return output.with_name(output.name + BACKUP_SUFFIX)
