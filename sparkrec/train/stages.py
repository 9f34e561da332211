"""The training job's stages: the runtime, the model, and extract -> transform -> load (`jobs/train.py`).

jobs/train.py drives three stages: `extract` (check the prepared data),
`transform` (fit, then measure on test) and `load` (write MODEL_DIR). Outputs
are built in MODEL_DIR.staging and renamed into place (`sparkrec.core.outputs`); the
resumable training state lives in MODEL_DIR.backup until the new model is in place.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sparkrec.core import outputs, runinfo
from sparkrec.core.config import to_dict
from sparkrec.core.runinfo import get_logger, sha256_file
from sparkrec.models import pairwise as M
from sparkrec.models import twotower
from sparkrec.train import towertrain
from sparkrec.train.config import TrainConfig
from sparkrec.train.dataset import Prepared, copy_vocabularies, open_prepared
from sparkrec.train.figures import history_panels, plot_history, plot_importance
from sparkrec.train.fitting import Replica, fit
from sparkrec.train.pairtrain import keras_fitting

BACKUP_SUFFIX = ".backup"
ONE_WORKER = Replica()
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


def undistributed(model: keras.Model, config: TrainConfig, vocab_sizes: dict[str, int]):
    """A function giving a copy of `model`'s current weights in a model built outside its strategy.

    Keras distributes predict() of a model built under a multi-worker strategy, a collective per
    call; validation and test metrics read the model through predict() on every worker alike, and
    need no one else's data.
    """
    copy = build_model(config, vocab_sizes)

    def read() -> keras.Model:
        copy.set_weights(model.get_weights())
        return copy

    return read


# ----------------------------------------------------------------- feeds


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


# ----------------------------------------------------------------- stages


def extract(data_dir: str | Path) -> Prepared:
    """Open and check the prepared data (raises DataError with a one-line reason)."""
    return open_prepared(data_dir)


def transform(
    prepared: Prepared, config: TrainConfig, staging: Path, backup_dir: Path, replica: Replica = ONE_WORKER
) -> Trained:
    """Fit, then measure the restored model on test: metrics and (paper, deep) permutation importance.

    As one `replica` of several (sparkrec.train.replica) it trains the two-tower model on its part of
    every batch; the job has prepared the backup (jobs/train.py), and every worker measures the same model.
    """
    seconds = {}
    started = time.perf_counter()
    with replica.scope():
        model = build_model(config, prepared.vocab_sizes)
    if config.model != "twotower":
        fitting = keras_fitting(model, prepared, config)
    else:
        reader = None if replica.strategy is None else undistributed(model, config, prepared.vocab_sizes)
        with replica.scope():
            fitting = towertrain.fitting(model, prepared, config, replica.index, replica.count, reader)
    if replica.count == 1:
        prepare_backup(backup_dir, fingerprint(prepared, config))
    rows = fitting.rows
    log.info(
        "model %s: %s parameters; %s train / %s validation / %s test rows",
        config.model,
        f"{model.count_params():,}",
        f"{rows['train']:,}",
        f"{rows['validation']:,}",
        f"{rows['test']:,}",
    )
    state = fit(replica.distribute(fitting), config, backup_dir, staging / "logs")
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    measured = fitting.test()
    importance = fitting.importance()
    seconds["evaluate"] = time.perf_counter() - started
    return Trained(
        model, config, rows, state.history, state.best()["epoch"], fitting.monitor[0], measured, importance, seconds
    )


def load(trained: Trained, prepared: Prepared, staging: Path, command: list[str]) -> dict:
    """Write the model and everything needed to trust and reuse it into `staging`."""
    trained.model.save(staging / "model.keras")
    copy_vocabularies(prepared, staging)
    document = metrics_document(trained)
    runinfo.write_json(None, staging / "metrics.json", document)
    runinfo.write_json(None, staging / "run.json", run_document(trained, prepared, command))
    (staging / "figures").mkdir(exist_ok=True)
    plot_history(
        trained.history, history_panels(trained.model), trained.best_epoch, staging / "figures" / "training.png"
    )
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


# ----------------------------------------------------------------- resumable state


def backup_path(output: Path) -> Path:
    return output.with_name(output.name + BACKUP_SUFFIX)
