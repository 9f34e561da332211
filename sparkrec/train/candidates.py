"""Sampled-softmax candidates for the two-tower model: a batch's targets plus sampled movies, with logQ.

A full softmax scores every vocabulary movie for every example and runs the
movie tower over the whole catalogue each step: on ML-20M (27k movies) a step
took three times as long as with a sample (docs/benchmarks.md). A sampled
softmax scores a set of candidates instead: the batch's own target movies
(each a negative for the other examples) and `negatives` more movies drawn with replacement, both from
the same distribution q, each movie's share of the training ratings, which is
how targets occur. Popular movies are then over-represented among the
negatives; the logQ correction (Bengio & Senecal 2008; Yi et al., RecSys
2019) subtracts from each candidate's logit the log of the expected number of
times the set drew it, log(1 - (1 - q_j) ** n) after de-duplicating n draws
(TensorFlow's unique candidate samplers use the same expected count), so the
sampled loss estimates the full softmax's and the movie bias learns
popularity as the full softmax would. The saved model never sees the
correction: scoring ranks by dot + bias over the whole catalogue.

Column 0 of every candidate set is the unknown movie index, which the
softmax always excludes: positions that point nowhere (padding, a history
movie not among the candidates) point there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparkrec.core import columns as C
from sparkrec.train.history import Batch, Histories


@dataclass(frozen=True)
class Candidates:
    """One batch's candidate columns, and where its targets and history movies sit among them."""

    candidate_movie: np.ndarray  # (C,) int32, [0, sorted distinct movie indices]
    candidate_log_q: np.ndarray  # (C,) float32, log expected draws of each candidate
    target_position: np.ndarray  # (B, T) int32 column of each target (0 for padding)
    history_position: np.ndarray  # (B, H) int32 column of each history movie (0: padding or not a candidate)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Sampler:
    """Draws each batch's candidates from the training ratings' movie distribution."""

    share: np.ndarray  # (movie vocabulary,) float64, each movie's share of the ratings; 0 for index 0
    negatives: int

    @classmethod
    def of(cls, histories: Histories, movie_vocab: int, negatives: int) -> Sampler:
        counts = np.bincount(histories.movies, minlength=movie_vocab).astype(np.float64)
        counts[C.UNKNOWN_INDEX] = 0.0
        return cls(counts / counts.sum(), negatives)

    def sample(self, batch: Batch, rng: np.random.Generator) -> Candidates:
        targets = batch.target_movie[batch.target_movie != C.UNKNOWN_INDEX]
        drawn = rng.choice(len(self.share), size=self.negatives, p=self.share)
        # Neither holds the unknown index: targets are filled slots, and its share is 0.
        movies = np.concatenate([[C.UNKNOWN_INDEX], np.unique(np.concatenate([targets, drawn]))]).astype(np.int32)
        draws = len(targets) + self.negatives
        log_q = np.zeros(len(movies))
        log_q[1:] = np.log(-np.expm1(draws * np.log1p(-self.share[movies[1:]])))
        column = _columns(movies, len(self.share))
        return Candidates(movies, log_q.astype(np.float32), column[batch.target_movie], column[batch.history_movie])


def _columns(candidates: np.ndarray, movie_vocab: int) -> np.ndarray:
    """Each movie index's column among candidates[1:], 0 where it is not one of them (and for padding)."""
    # A lookup per movie, not a search: the history array is (batch x 512) slots a step.
    column = np.zeros(movie_vocab, np.int32)
    column[candidates[1:]] = np.arange(1, len(candidates), dtype=np.int32)
    return column
