"""The fit loop every model shares: early stopping on a validation log, per-epoch backups, resume.

A model family describes its side in a `Fitting` (sparkrec.train.stages for the
paper and deep models, sparkrec.train.towertrain for the two-tower model); `fit`
runs Keras' fit over it with the callbacks that make a run resumable and
reproducible.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import keras
import tensorflow as tf

from sparkrec.core.runinfo import get_logger
from sparkrec.train.callbacks import AveragedWeights, EpochSeeds, EpochState, RowsPerSecond, resumed_epoch

if TYPE_CHECKING:
    from sparkrec.train.config import TrainConfig

log = get_logger("train")


@dataclass
class Fitting:
    """One model family's side of the shared fit loop (`fit`).

    `trainer` is what Keras fits (the model itself, or the two-tower Trainer
    around it); `batches(first_epoch)` streams epochs first_epoch..epochs-1,
    `steps` batches each; `validation` is Keras' own validation pass, or None
    when a `measures` callback adds the validation logs; `monitor` is the log
    key early stopping watches and whether higher is better; `finish` runs on
    the restored best weights; `test` and `importance` measure them.
    """

    trainer: keras.Model
    batches: Callable[[int], tf.data.Dataset]
    steps: int
    rows: dict[str, int]
    monitor: tuple[str, Literal["min", "max"]]
    validation: tf.data.Dataset | None
    measures: list[keras.callbacks.Callback]
    test: Callable[[], dict]
    importance: Callable[[], dict | None]
    finish: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Replica:
    """Which worker of data-parallel training this process is (sparkrec.train.replica); by default the only one."""

    index: int = 0
    count: int = 1
    strategy: tf.distribute.Strategy | None = None
    # Called as training steps and epochs end: the launcher kills a worker that stops calling it.
    progress: Callable[[], None] | None = None

    def scope(self):
        """Where the model and its optimizer must be built: their variables are mirrored on every worker."""
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    def distribute(self, fitting: Fitting) -> Fitting:
        """`fitting` with each worker's own batches given to the strategy as they are, neither sharded
        nor re-batched by it (the feed already streams this worker's part of every global batch),
        and `progress` called as each step and epoch ends."""
        if self.strategy is None:
            return fitting
        batches, strategy = fitting.batches, self.strategy
        measures = fitting.measures
        if self.progress is not None:
            report = self.progress
            progress = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: report(), on_epoch_end=lambda epoch, logs: report()
            )
            measures = [*measures, progress]
        return dataclasses.replace(
            fitting,
            batches=lambda first: strategy.distribute_datasets_from_function(lambda _: batches(first)),
            measures=measures,
        )


def fit(fitting: Fitting, config: TrainConfig, backup_dir: Path, log_dir: Path) -> EpochState:
    """Train with early stopping and per-epoch backups; leave the best epoch's weights in the trainer."""
    trainer = fitting.trainer
    first_epoch = resumed_epoch(backup_dir)
    monitor, mode = fitting.monitor
    state = EpochState(backup_dir, monitor, mode, config.patience, first_epoch)
    state.set_model(trainer)
    if first_epoch:
        log.info("resuming from %s after epoch %d", backup_dir, first_epoch)
    if first_epoch < config.epochs and not state.stopped:
        # First, so that every callback after it sees the averaged weights at epoch end.
        averaged = [AveragedWeights(resumed=first_epoch > 0)] if config.ema_momentum else []
        callbacks = averaged + [
            EpochSeeds(config.seed),
            RowsPerSecond(fitting.rows["train"]),
            *fitting.measures,
            state,
            # A run killed while the checkpoint is written leaves it unreadable: the previous one is kept
            # beside it, which Keras falls back to (its metadata is still the previous epoch's then).
            keras.callbacks.BackupAndRestore(
                str(backup_dir / "keras"), double_checkpoint=True, delete_checkpoint=False
            ),
            keras.callbacks.TensorBoard(str(log_dir), write_graph=False),
        ]
        trainer.fit(
            fitting.batches(first_epoch),
            epochs=config.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=fitting.steps,
            validation_data=fitting.validation,
            callbacks=callbacks,
            shuffle=False,  # the feed shuffles; Keras cannot shuffle a tf.data stream
            verbose=config.keras_verbose,
        )
    state.restore_best()
    fitting.finish()
    return state
