"""Settings of the prepare job (conf/prepare.yaml documents each)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sparkrec.core import columns as C
from sparkrec.core.config import ConfigError, count_or_all


@dataclass
class PrepareConfig:
    """Settings of the prepare job (conf/prepare.yaml documents each)."""

    sample_users: str = "5000"
    seed: int = 42
    split: Literal["random", "temporal"] = "random"
    test_fraction: float = 0.1
    like_threshold: float = 3.5
    max_bad_fraction: float = 0.01
    top_tags: int = 3
    split_files: int = 4
    row_group_mb: int = 8
    raw_cache: str | None = None
    figures: bool = True

    def validate(self) -> None:
        count_or_all("sample_users", self.sample_users)
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction: expected a value in (0, 1), got {self.test_fraction}")
        if not 0.5 <= self.like_threshold <= 5.0:
            raise ConfigError(f"like_threshold: expected a value in [0.5, 5.0], got {self.like_threshold}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ConfigError(f"max_bad_fraction: expected a value in [0, 1], got {self.max_bad_fraction}")
        if not 0 <= self.top_tags <= len(C.TAG_IDX_COLUMNS):
            raise ConfigError(f"top_tags: expected 0..{len(C.TAG_IDX_COLUMNS)}, got {self.top_tags}")
        if self.split_files < 1 or self.row_group_mb < 1:
            raise ConfigError("split_files and row_group_mb must be positive")

    @property
    def user_count(self) -> int | None:
        return count_or_all("sample_users", self.sample_users)
