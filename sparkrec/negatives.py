"""Sampled unrated pairs for the rank head: each batch's users against random catalogue movies.

A model trained on rated pairs only learns P(like | rated); over the unrated
catalogue that ranks rarely rated movies first. Appending, for every rated
row of a batch, `per_row` pairs of the same user with movies drawn from the
catalogue teaches the rank output which movies a user rates at all: its
target is the like label on rated rows and 0 on sampled ones. The other
outputs give sampled rows weight 0 and rated rows weight 1 + per_row, so
their losses keep the scale they have without sampling (Keras divides a
weighted loss by the batch's row count, not by the sum of the weights).

Draws are seeded by (seed, epoch, batch): a resumed run samples what an
uninterrupted run samples. A sampled movie may be one the user rated; at a
few ratings per hundred catalogue movies that noise is left in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow.parquet as pq

from sparkrec import columns as C


def read_catalogue(movies_dir: Path, inputs: Mapping[str, tuple[Sequence[str], str]]) -> dict[str, np.ndarray]:
    """Every movie-side model input for every movie of prepare's movies/ table, as (movies, width) arrays."""
    movie_side = {name: spec for name, spec in inputs.items() if name != C.USER_IDX}
    needed = list(dict.fromkeys(column for columns, _ in movie_side.values() for column in columns))
    table = pq.read_table(sorted(movies_dir.glob("*.parquet")), columns=needed)
    return {
        name: np.stack([table[column].to_numpy() for column in columns], axis=1).astype(dtype)
        for name, (columns, dtype) in movie_side.items()
    }


@dataclass(frozen=True)
class NegativeSampler:
    """Appends `per_row` sampled (user, movie) pairs per rated row, with targets and sample weights.

    `catalogue` maps each movie-side input to one row per candidate movie;
    `output` is the output trained on the sampled rows (target 0).
    """

    catalogue: Mapping[str, np.ndarray]
    per_row: int
    seed: int
    output: str

    @property
    def movies(self) -> int:
        return len(next(iter(self.catalogue.values())))

    def augment(
        self, x: dict[str, np.ndarray], y: dict[str, np.ndarray], epoch: int, batch: int
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, targets, sample weights): the rated rows first, then their sampled pairs."""
        rated = len(x[C.USER_IDX])
        sampled = rated * self.per_row
        picks = np.random.default_rng([self.seed, epoch, batch]).integers(0, self.movies, sampled)
        drawn = {name: values[picks] for name, values in self.catalogue.items()}
        drawn[C.USER_IDX] = np.tile(x[C.USER_IDX], (self.per_row, 1))
        inputs = {name: np.concatenate([values, drawn[name]]) for name, values in x.items()}
        targets = {name: np.concatenate([values, np.zeros((sampled, 1), values.dtype)]) for name, values in y.items()}
        rated_weight = np.float32(1 + self.per_row)
        weights = {
            name: np.ones(rated + sampled, np.float32) if name == self.output
            else np.concatenate([np.full(rated, rated_weight), np.zeros(sampled, np.float32)])
            for name in y
        }
        return inputs, targets, weights
