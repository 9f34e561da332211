"""Sampled unrated pairs for the rank head: each batch's users against random catalogue movies.

A model trained on rated pairs only learns P(like | rated); over the unrated
catalogue that ranks rarely rated movies first. Appending, for every rated
row of a batch, `per_row` pairs of the same user with movies drawn from the
catalogue teaches the rank output which movies a user rates at all: its
target is the like label on rated rows and 0 on sampled ones. The other
outputs give sampled rows weight 0 and rated rows weight 1 + per_row, so
their losses keep the scale they have without sampling (Keras divides a
weighted loss by the batch's row count, not by the sum of the weights).

Movies are drawn uniformly, or with `popularity_cdf` in proportion to
(train ratings + 1) ** exponent. Popular draws put the negatives where top-K
lists are made, among the movies most users rate, at the price of a biased
target: with sampling probability q(movie), the rank logit learns log(P(rated
and liked) / q(movie)) up to a constant. `sampling_offsets` gives log q per
movie index (relative to uniform draws), which the training job adds to the
rank head's movie bias once training ends, so the saved model ranks by
P(rated and liked) again.

Draws are seeded by (seed, epoch, batch): a resumed run samples what an
uninterrupted run samples. Without `rated`, a sampled movie may be one the
user rated in train (1.7% of the catalogue for an average ml-latest-small
user, 13% on the generated data's 1,000 movies); with it, such draws are
redrawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sparkrec.core import columns as C

# Redraws of sampled movies the user rated before the rest are kept anyway (a user who rated most of the catalogue).
REDRAWS = 8


def pair_keys(users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """One int64 per (user_idx, movie_idx) pair."""
    return (users.astype(np.int64).ravel() << 32) | movies.astype(np.int64).ravel()


def popularity_cdf(counts: np.ndarray, exponent: float) -> np.ndarray:
    """Cumulative sampling probabilities of catalogue rows with `counts` train ratings each."""
    weights = (counts.astype(np.float64) + 1.0) ** exponent
    return np.cumsum(weights / weights.sum())


def sampling_offsets(cdf: np.ndarray, movie_idx: np.ndarray, vocab_size: int) -> np.ndarray:
    """log(q * catalogue size) for each movie index, q being the probability of drawing one of its rows.

    Relative to uniform draws, so the rank logit keeps the range it has
    without popularity sampling. Rows outside the vocabulary share index 0;
    they have no train ratings, so each has the same q and index 0 gets that
    per-row value.
    """
    probability = np.diff(cdf, prepend=0.0)
    offsets = np.zeros(vocab_size)
    offsets[movie_idx] = np.log(probability * len(probability))
    return offsets


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
    `output` is the output trained on the sampled rows (target 0); `rated`,
    sorted unique `pair_keys` of the training ratings, are never drawn (up to
    REDRAWS times); `cdf` (from `popularity_cdf`) replaces uniform draws.
    """

    catalogue: Mapping[str, np.ndarray]
    per_row: int
    seed: int
    output: str
    rated: np.ndarray | None = None
    cdf: np.ndarray | None = None

    @property
    def movies(self) -> int:
        return len(next(iter(self.catalogue.values())))

    def augment(
        self, x: dict[str, np.ndarray], y: dict[str, np.ndarray], epoch: int, batch: int
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, targets, sample weights): the rated rows first, then their sampled pairs."""
        rated = len(x[C.USER_IDX])
        sampled = rated * self.per_row
        users = np.tile(x[C.USER_IDX], (self.per_row, 1))
        picks = self.draw(users, np.random.default_rng([self.seed, epoch, batch]))
        drawn = {name: values[picks] for name, values in self.catalogue.items()}
        drawn[C.USER_IDX] = users
        inputs = {name: np.concatenate([values, drawn[name]]) for name, values in x.items()}
        targets = {name: np.concatenate([values, np.zeros((sampled, 1), values.dtype)]) for name, values in y.items()}
        rated_weight = np.float32(1 + self.per_row)
        weights = {
            name: np.ones(rated + sampled, np.float32)
            if name == self.output
            else np.concatenate([np.full(rated, rated_weight), np.zeros(sampled, np.float32)])
            for name in y
        }
        return inputs, targets, weights

    def draw(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A catalogue row per user; with `rated`, rows the user rated are redrawn."""
        picks = self.rows(len(users), rng)
        if self.rated is None:
            return picks
        for _ in range(REDRAWS):
            clash = self.is_rated(users, picks)
            if not clash.any():
                break
            picks[clash] = self.rows(int(clash.sum()), rng)
        return picks

    def rows(self, count: int, rng: np.random.Generator) -> np.ndarray:
        if self.cdf is None:
            return rng.integers(0, self.movies, count)
        # min: a uniform draw can land past a last cdf value rounded just below 1.
        return np.minimum(np.searchsorted(self.cdf, rng.random(count), side="right"), self.movies - 1)

    def is_rated(self, users: np.ndarray, picks: np.ndarray) -> np.ndarray:
        keys = pair_keys(users, self.catalogue[C.MOVIE_IDX][picks])
        at = np.minimum(np.searchsorted(self.rated, keys), len(self.rated) - 1)
        return self.rated[at] == keys
