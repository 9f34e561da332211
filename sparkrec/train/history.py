"""Users' rating histories, and the two-tower model's training examples cut from them.

`Histories` holds every training rating once, grouped by user (CSR: one
offset per user index), each user's ratings sorted by movie index so the
layout never depends on the order the split was read in. An epoch's
examples (`fold_examples`) split each user's ratings at random into folds:
one example per (user, fold), whose targets are the fold's ratings and whose
history is the user's other ratings (or a random part of them: history
dropout, `history_keep_min`). So every training rating is a target
exactly once per epoch, and never inside the history it is predicted from:
the same relation as between a user's train ratings and their test ratings,
which the evaluation ranks from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sparkrec.core import columns as C

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
    def from_rows(
        cls, users: np.ndarray, movies: np.ndarray, likes: np.ndarray, ratings: np.ndarray, user_count: int
    ) -> Histories:
        order = np.lexsort((movies, users))
        users = users[order]
        offsets = np.searchsorted(users, np.arange(user_count + 1)).astype(np.int64)
        return cls(
            offsets, movies[order].astype(np.int32), likes[order].astype(np.float32), ratings[order].astype(np.float32)
        )

    @property
    def user_count(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.movies)

    def spans(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The given users' ratings side by side, user after user in the order given.

        Returns each entry's rating index, each entry's position in `users`,
        and each user's first entry.
        """
        lengths = self.lengths[users]
        first = np.cumsum(lengths) - lengths
        index = np.repeat(self.offsets[users] - first, lengths) + np.arange(lengths.sum())
        return index, np.repeat(np.arange(len(users)), lengths), first


@dataclass(frozen=True)
class Batch:
    """Padded example arrays: B examples, H history slots, T target slots; PAD marks an empty slot."""

    user_idx: np.ndarray  # (B,) int32, whose example it is: the towers never read it
    history_movie: np.ndarray  # (B, H) int32
    history_like: np.ndarray  # (B, H) float32
    target_movie: np.ndarray  # (B, T) int32
    target_like: np.ndarray  # (B, T) float32
    target_rating: np.ndarray  # (B, T) float32

    def arrays(self) -> dict[str, np.ndarray]:
        """What the Trainer reads."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "user_idx"}


def fold_counts(lengths: np.ndarray, folds: int, max_targets: int) -> np.ndarray:
    """Examples per user: `folds`, more when a fold would exceed max_targets, at most one per rating."""
    return np.minimum(lengths, np.maximum(folds, -(-lengths // max_targets)))


def example_count(histories: Histories, folds: int, max_targets: int) -> int:
    """Examples per epoch: fixed by the histories and settings, whatever the seed."""
    return int(fold_counts(histories.lengths, folds, max_targets).sum())


def global_batches(examples: int, batch_size: int, parts: int = 1) -> int:
    """Batches of `batch_size` an epoch of `examples` makes, each split into `parts` (one per worker).

    With parts > 1 a last batch too small to give every part an example is
    dropped (at most parts - 1 examples an epoch): a worker with no example
    would have no loss to average.
    """
    batches = -(-examples // batch_size)
    if parts > 1 and 0 < examples % batch_size < parts:
        batches -= 1
    return batches


def shard(chosen: np.ndarray, part: int, parts: int) -> np.ndarray:
    """Part `part` of `parts` near-equal contiguous parts of a batch's examples (all of them when parts == 1)."""
    return chosen if parts == 1 else np.array_split(chosen, parts)[part]


def fold_examples(
    histories: Histories,
    folds: int,
    max_targets: int,
    max_history: int,
    batch_size: int,
    rng: np.random.Generator,
    part: int = 0,
    parts: int = 1,
    history_keep_min: float = 1.0,
) -> Iterator[Batch]:
    """One epoch of examples in batches of `batch_size`, users and folds in random order.

    Each user's ratings are permuted and dealt round-robin into their folds.
    With `history_keep_min` < 1 each example keeps a random share of its
    history, drawn uniformly from [history_keep_min, 1) per example: a rating
    stays if its own draw for the epoch is below the share. Targets never
    change. A history still longer than `max_history` keeps a random
    `max_history` of them. With `parts` workers, every worker draws the same
    epoch (same rng) and builds only its part of each batch: together they
    train on the batches one worker would.
    """
    lengths = histories.lengths
    counts = fold_counts(lengths, folds, max_targets)
    owner = np.repeat(np.arange(histories.user_count), lengths)
    # A random key in [0, 1) per rating plus its user index, sorted: a permutation of every user's
    # ratings at once (one float sort; a lexsort took 12 s of every epoch on 18 M ratings).
    permuted = np.argsort(owner + rng.random(len(histories)))
    position = np.arange(len(histories)) - histories.offsets[owner]
    fold = np.empty(len(histories), np.int64)
    fold[permuted] = position % counts[owner]
    examples = np.repeat(np.arange(histories.user_count), counts)
    examples_fold = np.arange(len(examples)) - np.repeat(np.cumsum(counts) - counts, counts)
    order = rng.permutation(len(examples))
    # Drawn after the folds and the order: without dropout an epoch is what it was before the option.
    draw = share = None
    if history_keep_min < 1.0:
        draw = rng.random(len(histories), np.float32)
        share = rng.uniform(history_keep_min, 1.0, len(examples))
    for start in range(0, global_batches(len(order), batch_size, parts) * batch_size, batch_size):
        chosen = shard(order[start : start + batch_size], part, parts)
        kept_share = None if share is None else share[chosen]
        yield _batch(histories, permuted, fold, examples[chosen], examples_fold[chosen], max_history, draw, kept_share)


def _batch(
    histories: Histories,
    permuted: np.ndarray,
    fold: np.ndarray,
    users: np.ndarray,
    folds: np.ndarray,
    max_history: int,
    draw: np.ndarray | None = None,
    share: np.ndarray | None = None,
) -> Batch:
    # Every example's ratings side by side, each user's in their permuted order (so a history cut
    # to max_history is a random subset), without a Python loop over the examples.
    index, example, first = histories.spans(users)
    ratings = permuted[index]
    in_fold = fold[ratings] == folds[example]
    target_slot = _slot_in_example(in_fold, example, first)
    history = ~in_fold if draw is None else ~in_fold & (draw[ratings] < share[example])
    history_slot = _slot_in_example(history, example, first)
    kept = history & (history_slot < max_history)
    history_movie, history_like = _padded(
        histories, ratings[kept], example[kept], history_slot[kept], len(users), histories.likes
    )
    target_movie, target_like, target_rating = _padded(
        histories,
        ratings[in_fold],
        example[in_fold],
        target_slot[in_fold],
        len(users),
        histories.likes,
        histories.ratings,
    )
    return Batch(users.astype(np.int32), history_movie, history_like, target_movie, target_like, target_rating)


def _slot_in_example(chosen: np.ndarray, example: np.ndarray, first: np.ndarray) -> np.ndarray:
    """For each entry, how many chosen entries of its example come before it (every example has an entry)."""
    before = np.cumsum(chosen) - chosen
    return before - before[first][example]


def _padded(
    histories: Histories, ratings: np.ndarray, row: np.ndarray, slot: np.ndarray, rows: int, *columns: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(movie, *values) arrays of shape (rows, fullest row): rating i at [row[i], slot[i]], PAD and 0 elsewhere."""
    width = int(slot.max()) + 1 if len(slot) else 1
    movie = np.full((rows, width), PAD, np.int32)
    movie[row, slot] = histories.movies[ratings]
    values = []
    for column in columns:
        value = np.zeros((rows, width), np.float32)
        value[row, slot] = column[ratings]
        values.append(value)
    return (movie, *values)


def user_history(histories: Histories, users: np.ndarray) -> tuple[np.ndarray, ...]:
    """Padded (history_movie, history_like) of whole histories: what the model ranks from."""
    ratings, row, first = histories.spans(users)
    return _padded(histories, ratings, row, np.arange(len(ratings)) - first[row], len(users), histories.likes)
