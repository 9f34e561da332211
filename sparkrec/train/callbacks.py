"""Keras callbacks of the training job: throughput, per-epoch seeds, test logs, averaging, early stopping state."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf


class RowsPerSecond(keras.callbacks.Callback):
    """Adds `rows_per_s` (training rows over training time, validation excluded) to each epoch's logs."""

    def __init__(self, rows: int):
        super().__init__()
        self.rows = rows
        self.started = self.finished = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.finished = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["rows_per_s"] = self.rows / max(self.finished - self.started, 1e-9)


class EpochSeeds(keras.callbacks.Callback):
    """Re-seeds every layer's random generator (dropout) from (seed, epoch) as each epoch begins.

    Keras checkpoints do not carry the generators' state; seeding per epoch
    makes a resumed epoch draw the very masks an uninterrupted run draws.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        for index, layer in enumerate(self.model.layers):
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:
                start = np.random.default_rng([self.seed, epoch, index]).integers(2**31 - 1)
                generator.state.assign(np.array([start, 0], dtype=generator.state.dtype))


class TestMetrics(keras.callbacks.Callback):
    """Evaluates the test split after every epoch (the paper's Figure 4 plots it), as `test_*` logs."""

    def __init__(self, dataset: tf.data.Dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        results = self.model.evaluate(self.dataset, verbose=0, return_dict=True)
        logs.update({f"test_{name}": float(value) for name, value in results.items()})


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Puts the optimizer's moving average of the weights in the model from the end of each
    epoch's steps to the start of the next: validation, test logs, the kept epoch's weights
    and the backup all see the average; the steps update the raw weights.

    The backup is written with the average in the model (the raw weights in the
    optimizer's slots), so a resumed run swaps them back before its first step.
    """

    def __init__(self, resumed: bool):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed


class EpochState(keras.callbacks.Callback):
    """Early stopping with best-weights restore, whose state survives a killed run.

    After each epoch it appends the epoch's logs to `state.json` and, on an
    improvement of `monitor`, saves `best.weights.h5`, both in `directory`.
    It runs before BackupAndRestore saves its checkpoint, so a resumed run
    finds every epoch Keras will not redo; epochs it will redo are dropped.
    The best value and the patience count are replayed from the kept logs.
    """

    def __init__(self, directory: Path, monitor: str, mode: Literal["min", "max"], patience: int, first_epoch: int):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.patience = patience
        self.history = [entry for entry in self.saved_history() if entry["epoch"] < first_epoch]

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def weights_path(self) -> Path:
        return self.directory / "best.weights.h5"

    def saved_history(self) -> list[dict]:
        if not self.state_path.is_file():
            return []
        return json.loads(self.state_path.read_text())["history"]

    def best(self) -> dict | None:
        """The kept epoch with the best monitored value (the earliest on ties)."""
        if not self.history:
            return None
        return max(self.history, key=lambda entry: (self.sign * entry[self.monitor], -entry["epoch"]))

    @property
    def stopped(self) -> bool:
        best = self.best()
        return best is not None and self.history[-1]["epoch"] - best["epoch"] >= self.patience

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({"epoch": epoch, **{key: float(value) for key, value in logs.items()}})
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.best()["epoch"] == epoch:
            # Written aside and renamed: a run killed mid-write keeps the previous best intact.
            written = self.directory / "next-best.weights.h5"
            self.model.save_weights(written, overwrite=True)
            os.replace(written, self.weights_path)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"monitor": self.monitor, "history": self.history}, indent=1))
        os.replace(temporary, self.state_path)
        if self.stopped:
            self.model.stop_training = True

    def restore_best(self) -> None:
        if self.weights_path.is_file():
            self.model.load_weights(self.weights_path)


def resumed_epoch(backup_dir: Path) -> int:
    """The epoch BackupAndRestore will resume at: the count of epochs in its checkpoint.

    Read from the callback's own metadata file so the input pipeline starts at
    the very epoch Keras starts at.
    """
    metadata = backup_dir / "keras" / "training_metadata.json"
    if not metadata.is_file():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])
