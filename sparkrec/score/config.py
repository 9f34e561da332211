"""Settings of the scoring job, and its one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sparkrec.core.config import ConfigError
from sparkrec.core.errors import SparkrecError
from sparkrec.models.towers import FoldIn

MODEL_FILE = "model.keras"


class ScoreError(SparkrecError):
    """Inputs the scoring job cannot use: a missing table, a model that does not fit the data."""


@dataclass
class ScoreConfig:
    """Settings of the scoring job (conf/score.yaml documents each)."""

    users: Literal["sample", "all"] = "sample"
    top_k: int = 10
    path: Literal["auto", "fast", "generic"] = "auto"
    unknown_users: Literal["score", "skip"] = "score"
    limit_users: int = 0
    output_name: str = "auto"
    arrow_batch_users: int = 2048
    block_users: int = 4
    tower_block_users: int = 256
    fold_in_steps: int = FoldIn.steps
    fold_in_rate: float = FoldIn.rate
    fold_in_dislike_weight: float = FoldIn.dislike_weight
    fold_in_energy: float = FoldIn.energy
    generic_batch_pairs: int = 65536
    partitions: int = 0
    export: Literal["none", "csv", "json"] = "none"

    @property
    def fold_in(self) -> FoldIn:
        return FoldIn(self.fold_in_steps, self.fold_in_rate, self.fold_in_dislike_weight, self.fold_in_energy)

    def validate(self) -> None:
        positive = ("top_k", "arrow_batch_users", "block_users", "tower_block_users", "generic_batch_pairs")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.fold_in_steps < 0 or not self.fold_in_rate > 0 or not self.fold_in_dislike_weight > 0:
            raise ConfigError(
                "fold_in_steps must be >= 0, fold_in_rate and fold_in_dislike_weight > 0, got "
                f"{self.fold_in_steps}, {self.fold_in_rate} and {self.fold_in_dislike_weight}"
            )
        if not 0 < self.fold_in_energy <= 1:
            raise ConfigError(f"fold_in_energy must be in (0, 1], got {self.fold_in_energy}")
        if self.limit_users < 0 or self.partitions < 0:
            raise ConfigError("limit_users and partitions must be >= 0 (0: no limit, automatic)")
