"""Settings of the evaluation job, the baselines it knows, and its one-line error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sparkrec.core.config import ConfigError, count_or_all
from sparkrec.core.errors import SparkrecError

# Strongest first: the two top-N baselines, then popularity, the rating regressor and the paper's "standard ML".
BASELINES = ("als_implicit", "ease", "popular", "als", "logistic")


RANKING_TUNED = ("als_implicit", "ease")


# The baselines that can rank a user they were not fitted on: EASE from the user's history,
# most-popular for anyone. Our model ranks them too (the two-tower model from their history).
HELD_OUT_BASELINES = ("ease", "popular")


class EvaluateError(SparkrecError):
    """Inputs the evaluation cannot use; the message is one line."""


@dataclass
class EvaluateConfig:
    """Settings of the evaluation job (conf/evaluate.yaml documents each)."""

    k: int = 10
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    eval_users: str = "all"
    held_out_users: int = 0
    seed: int = 42
    validation_fraction: float = 0.1
    popular_prior: float = 2.0
    als_ranks: list[int] = field(default_factory=lambda: [10, 30])
    als_reg_params: list[float] = field(default_factory=lambda: [0.05, 0.1])
    als_max_iter: int = 10
    als_blocks: int = 0
    als_max_rank: int = 256
    als_implicit_ranks: list[int] = field(default_factory=lambda: [32, 64, 128])
    als_implicit_reg_params: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    als_implicit_alphas: list[float] = field(default_factory=lambda: [0.0, 1.0, 10.0, 40.0])
    als_implicit_search_iter: int = 10
    als_implicit_max_iter: int = 30
    als_implicit_signal: Literal["binary", "rating", "like"] = "like"
    ease_lambdas: list[float] = field(default_factory=lambda: [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0])
    ease_dislike_weights: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25, 0.0])
    ease_max_items: int = 30000
    logistic_reg_params: list[float] = field(default_factory=lambda: [1e-5, 1e-4])
    logistic_max_iter: int = 100
    widen_steps: int = 4
    block_users: int = 64
    predict_batch_size: int = 8192

    def validate(self) -> None:
        if self.k <= 0:
            raise ConfigError(f"k: expected a positive integer, got {self.k}")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ConfigError(f"baselines: unknown {unknown}, expected some of {list(BASELINES)}")
        count_or_all("eval_users", self.eval_users)
        if self.held_out_users < 0:
            raise ConfigError(f"held_out_users: expected 0 (none) or a positive integer, got {self.held_out_users}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction: expected a value in (0, 1), got {self.validation_fraction}")
        grids = {
            "als_ranks": self.als_ranks,
            "als_reg_params": self.als_reg_params,
            "als_implicit_ranks": self.als_implicit_ranks,
            "als_implicit_reg_params": self.als_implicit_reg_params,
            "als_implicit_alphas": self.als_implicit_alphas,
            "ease_lambdas": self.ease_lambdas,
            "logistic_reg_params": self.logistic_reg_params,
        }
        for name, values in grids.items():
            if not values or min(values) < 0 or (name.endswith("_ranks") and min(values) < 1):
                raise ConfigError(f"{name}: expected a non-empty list of non-negative values, got {values}")
        if not self.ease_dislike_weights or not all(0 <= w <= 1 for w in self.ease_dislike_weights):
            raise ConfigError(
                f"ease_dislike_weights: expected a non-empty list of values in [0, 1], got {self.ease_dislike_weights}"
            )
        positive = (
            "als_max_iter",
            "als_max_rank",
            "als_implicit_search_iter",
            "als_implicit_max_iter",
            "ease_max_items",
            "logistic_max_iter",
            "block_users",
            "predict_batch_size",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.als_blocks < 0:
            raise ConfigError(f"als_blocks: expected 0 (one per core) or a positive integer, got {self.als_blocks}")
        if self.popular_prior < 0:
            raise ConfigError(f"popular_prior: expected a non-negative number, got {self.popular_prior}")
        if self.widen_steps < 0:
            raise ConfigError(f"widen_steps: expected 0 (the grids as given) or more, got {self.widen_steps}")

    @property
    def user_count(self) -> int | None:
        return count_or_all("eval_users", self.eval_users)
