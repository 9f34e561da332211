"""Settings of the training job: typed defaults, their checks, and each model's presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from sparkrec.core.config import ConfigError

# Settings left at None take the model's preset: the paper's own for `paper`.
PRESETS = {
    "paper": {"epochs": 10, "batch_size": 64, "learning_rate": 1e-3, "ema_momentum": 0.0, "monitor": "auc"},
    "deep": {"epochs": 30, "batch_size": 1024, "learning_rate": 2e-3, "ema_momentum": 0.99, "monitor": "auc"},
    "twotower": {"epochs": 30, "batch_size": 256, "learning_rate": 3e-3, "ema_momentum": 0.99, "monitor": "ndcg"},
}


@dataclass
class TrainConfig:
    """Settings of jobs/train.py; conf/train.yaml documents each one."""

    model: Literal["paper", "deep", "twotower"] = "twotower"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    ema_momentum: float | None = None
    paper_loss: Literal["mse", "binary_crossentropy"] = "mse"
    embedding_dim: int = 32
    hidden_units: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.2
    l2: float = 3e-3
    bias_terms: bool = False
    rating_weight: float = 1.0
    negatives: int = 4
    rank_weight: float = 4.0
    rank_bias: bool = True
    unrated_negatives: bool = False
    negative_popularity: float = 1.0
    tower_dim: int = 256
    tower_hidden: int = 256
    head_hidden: int = 64
    folds: int = 10
    max_targets: int = 64
    max_history: int = 512
    history_keep_min: float = 0.5
    dislike_weight: float = 0.5
    like_weight: float = 1.0
    tower_rating_weight: float = 0.5
    calibrate_like: bool = True
    sampled_negatives: int = 2048
    validation_users: int = 2000
    validation_fraction: float = 0.05
    monitor: Literal["accuracy", "auc", "loss", "ndcg"] | None = None
    patience: int = 3
    shuffle_buffer_rows: int = 200_000
    eval_batch_size: int = 8192
    importance_rows: int = 100_000
    importance_repeats: int = 3
    seed: int = 42
    deterministic: bool = True
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    keras_verbose: int = 2
    workers: int = 1
    worker_timeout: int = 600

    def validate(self) -> None:
        checks = {
            "epochs must be >= 1": self.epochs is None or self.epochs >= 1,
            "batch_size must be >= 1": self.batch_size is None or self.batch_size >= 1,
            "learning_rate must be > 0": self.learning_rate is None or self.learning_rate > 0,
            "ema_momentum must be in [0, 1)": self.ema_momentum is None or 0 <= self.ema_momentum < 1,
            "hidden_units needs at least one positive width": bool(self.hidden_units) and min(self.hidden_units) > 0,
            "dropout must be in [0, 1)": 0 <= self.dropout < 1,
            "negatives must be >= 0": self.negatives >= 0,
            "rank_weight must be > 0": self.rank_weight > 0,
            "negative_popularity must be in [0, 1]": 0 <= self.negative_popularity <= 1,
            "negative_popularity needs rank_bias (the sampling offsets are added to it)": self.negative_popularity == 0
            or self.rank_bias,
            "validation_fraction must be in [0, 0.5]": 0 <= self.validation_fraction <= 0.5,
            "patience must be >= 1": self.patience >= 1,
            "tower_dim, tower_hidden, head_hidden, folds, max_targets, max_history and validation_users "
            "must be >= 1": min(
                self.tower_dim,
                self.tower_hidden,
                self.head_hidden,
                self.folds,
                self.max_targets,
                self.max_history,
                self.validation_users,
            )
            >= 1,
            "history_keep_min must be in [0, 1]": 0 <= self.history_keep_min <= 1,
            "sampled_negatives must be >= 0": self.sampled_negatives >= 0,
            "dislike_weight, like_weight and tower_rating_weight must be >= 0": min(
                self.dislike_weight, self.like_weight, self.tower_rating_weight
            )
            >= 0,
            "monitor ndcg is the two-tower model's (the others validate rated rows only)": self.monitor != "ndcg"
            or self.model == "twotower",
            "monitor loss applies to the paper and deep models (the two-tower model validates by ranking)": self.monitor
            != "loss"
            or self.model != "twotower",
            "the two-tower model validates on its holdout: validation_fraction must be > 0": self.model != "twotower"
            or self.validation_fraction > 0,
            "importance_repeats must be >= 1": self.importance_repeats >= 1,
            "workers must be >= 1": self.workers >= 1,
            "workers > 1 trains the two-tower model only (model: twotower)": self.workers == 1
            or self.model == "twotower",
            "worker_timeout must be >= 1 (seconds)": self.worker_timeout >= 1,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ConfigError("; ".join(failed))

    def resolved(self) -> TrainConfig:
        """A copy with every None setting replaced by the model's preset."""
        preset = PRESETS[self.model]
        filled = {key: preset[key] for key in preset if getattr(self, key) is None}
        return dataclasses.replace(self, **filled)
