"""Users' rating histories, and the two-tower model's training examples cut from them.

`Histories` holds every training rating once, grouped by user (CSR: one
offset per user index), each user's ratings sorted by movie index so the
layout never depends on the order the split was read in. An epoch's
examples (`fold_examples`) split each user's ratings at random into folds:
one example per (user, fold), whose targets are the fold's ratings and whose
history is the user's other ratings. So every training rating is a target
exactly once per epoch, and never inside the history it is predicted from:
the same relation as between a user's train ratings and their test ratings,
which the evaluation ranks from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from sparkrec import columns as C

# Padding of the history and target arrays: the unknown movie index, which the towers ignore.
PAD = C.UNKNOWN_INDEX


@dataclass(frozen=True)
class Histories:
    """Ratings grouped by user index: user u's are movies[offsets[u]:offsets[u + 1]]."""

    offsets: np.ndarray  # int64, users + 1
    movies: np.ndarray  # int32 movie_idx
    likes: np.ndarray  # float32 0/1
    ratings: np.ndarray  # float32 stars

    @classmethod
    def from_rows(cls, users: np.ndarray, movies: np.ndarray, likes: np.ndarray, ratings: np.ndarray,
                  user_count: int) -> Histories:
        order = np.lexsort((movies, users))
        users = users[order]
        offsets = np.searchsorted(users, np.arange(user_count + 1)).astype(np.int64)
        return cls(offsets, movies[order].astype(np.int32), likes[order].astype(np.float32),
                   ratings[order].astype(np.float32))

    @property
    def user_count(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.movies)


@dataclass(frozen=True)
class Batch:
    """Padded example arrays: B examples, H history slots, T target slots; PAD marks an empty slot."""

    user_idx: np.ndarray  # (B,) int32
    history_movie: np.ndarray  # (B, H) int32
    history_like: np.ndarray  # (B, H) float32
    target_movie: np.ndarray  # (B, T) int32
    target_like: np.ndarray  # (B, T) float32
    target_rating: np.ndarray  # (B, T) float32

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def fold_counts(lengths: np.ndarray, folds: int, max_targets: int) -> np.ndarray:
    """Examples per user: `folds`, more when a fold would exceed max_targets, at most one per rating."""
    return np.minimum(lengths, np.maximum(folds, -(-lengths // max_targets)))


def example_count(histories: Histories, folds: int, max_targets: int) -> int:
    """Examples per epoch: fixed by the histories and settings, whatever the seed."""
    return int(fold_counts(histories.lengths, folds, max_targets).sum())


def fold_examples(histories: Histories, folds: int, max_targets: int, max_history: int, batch_size: int,
                  rng: np.random.Generator, user_id_dropout: float = 0.0) -> Iterator[Batch]:
    """One epoch of examples in batches of `batch_size`, users and folds in random order.

    Each user's ratings are permuted and dealt round-robin into their folds.
    A history longer than `max_history` keeps a random `max_history` of the
    user's other ratings. With `user_id_dropout`, that share of examples has
    its user index replaced by the unknown index, so the model also learns to
    place a user from their history alone, as it must for users it never saw.
    """
    lengths = histories.lengths
    counts = fold_counts(lengths, folds, max_targets)
    owner = np.repeat(np.arange(histories.user_count), lengths)
    # A random key per rating, sorted within each user: a permutation of every user's ratings at once.
    permuted = np.lexsort((rng.random(len(histories)), owner))
    position = np.arange(len(histories)) - histories.offsets[owner]
    fold = np.empty(len(histories), np.int64)
    fold[permuted] = position % counts[owner]
    examples = np.repeat(np.arange(histories.user_count), counts)
    examples_fold = np.arange(len(examples)) - np.repeat(np.cumsum(counts) - counts, counts)
    order = rng.permutation(len(examples))
    keep_id = rng.random(len(examples)) >= user_id_dropout
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        yield _batch(histories, permuted, fold, examples[chosen], examples_fold[chosen], keep_id[chosen], max_history)


def _batch(histories: Histories, permuted: np.ndarray, fold: np.ndarray, users: np.ndarray, folds: np.ndarray,
           keep_id: np.ndarray, max_history: int) -> Batch:
    targets, history = [], []
    for user, chosen in zip(users, folds):
        # The user's ratings in their permuted order: a history cut to max_history is a random subset.
        ratings = permuted[histories.offsets[user] : histories.offsets[user + 1]]
        in_fold = fold[ratings] == chosen
        targets.append(ratings[in_fold])
        history.append(ratings[~in_fold][:max_history])
    history_movie, history_like = _padded(histories, history, histories.likes)
    target_movie, target_like, target_rating = _padded(histories, targets, histories.likes, histories.ratings)
    user_idx = np.where(keep_id, users, C.UNKNOWN_INDEX).astype(np.int32)
    return Batch(user_idx, history_movie, history_like, target_movie, target_like, target_rating)


def _padded(histories: Histories, rows: list[np.ndarray], *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """(movie, *values) arrays of shape (len(rows), longest row), PAD and 0 past each row's end."""
    width = max(1, max(len(row) for row in rows))
    movie = np.full((len(rows), width), PAD, np.int32)
    values = [np.zeros((len(rows), width), np.float32) for _ in columns]
    for i, row in enumerate(rows):
        movie[i, : len(row)] = histories.movies[row]
        for value, column in zip(values, columns):
            value[i, : len(row)] = column[row]
    return (movie, *values)


def user_history(histories: Histories, users: np.ndarray) -> tuple[np.ndarray, ...]:
    """Padded (history_movie, history_like) of whole histories: what the model ranks from."""
    rows = [np.arange(histories.offsets[user], histories.offsets[user + 1]) for user in users]
    return _padded(histories, rows, histories.likes)
