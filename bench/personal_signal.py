"""How much a user's personal taste can add to like accuracy on a prepared split, model-free.

    python bench/personal_signal.py --data PREPARED_DIR [--ranks 4,8] [--lambdas 5,15,30] [--seed 42]

Fits, by alternating ridge regressions on the star ratings, a bias model
(global mean + user bias + movie bias) and a matrix factorization with the
same biases plus rank-k user and movie factors. Settings and the like
threshold on the predicted stars are chosen on a 10% holdout of train (the
training job's `Holdout` hash, with its seed); the
chosen models are measured on test. The gap between the two is the personal
signal a learner can find in that much data, independently of our Keras model:
run it on ml-latest-small and on generated data to compare the two.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from sparkrec.core import columns as C
from sparkrec.train.dataset import DataError, Holdout, read_frame

ITERATIONS = 12
BIAS_RIDGE = 2.0
VALIDATION_SHARE = 0.1
COLUMNS = (C.USER_ID, C.MOVIE_ID, C.USER_IDX, C.MOVIE_IDX, C.RATING, C.LIKE)


def fit(users: np.ndarray, movies: np.ndarray, stars: np.ndarray, shape: tuple[int, int], rank: int, lam: float):
    """Alternating ridge solves of (factors, bias) per user, then per movie; rank 0 is the bias model."""
    mean = stars.mean()
    rng = np.random.default_rng(0)
    sides = [rng.normal(0.0, 0.1, (n, rank + 1)) for n in shape]
    for side in sides:
        side[:, rank] = 0.0
    penalty = np.diag([lam] * rank + [BIAS_RIDGE])
    groups = [pd.Series(np.arange(stars.size)).groupby(keys).indices for keys in (users, movies)]
    index = (users, movies)
    for _ in range(ITERATIONS):
        for this in (0, 1):
            other = 1 - this
            for key, rows in groups[this].items():
                design = np.hstack([sides[other][index[other][rows], :rank], np.ones((rows.size, 1))])
                target = stars[rows] - mean - sides[other][index[other][rows], rank]
                sides[this][key] = np.linalg.solve(design.T @ design + penalty, design.T @ target)
    return mean, sides


def predict(model, users: np.ndarray, movies: np.ndarray, rank: int) -> np.ndarray:
    mean, (u, m) = model
    return mean + u[users, rank] + m[movies, rank] + np.einsum("ij,ij->i", u[users, :rank], m[movies, :rank])


def best_threshold(predicted: np.ndarray, like: np.ndarray) -> tuple[float, float]:
    """The star threshold with the best like accuracy, and that accuracy."""
    grid = np.quantile(predicted, np.linspace(0.1, 0.7, 121))
    scores = [((predicted >= t) == like).mean() for t in grid]
    return float(grid[int(np.argmax(scores))]), float(max(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a prepare output directory")
    parser.add_argument("--ranks", default="4,8", help="factor ranks to try (default: %(default)s)")
    parser.add_argument("--lambdas", default="5,15,30", help="factor ridge strengths to try (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the holdout hash (default: %(default)s)")
    args = parser.parse_args()

    train, test = read_frame(args.data / "train", COLUMNS), read_frame(args.data / "test", COLUMNS)
    user_ids, movie_ids = np.unique(train[C.USER_ID]), np.unique(train[C.MOVIE_ID])
    # A factorization has nothing to say about a user or movie it never saw.
    test = test[test[C.MOVIE_ID].isin(movie_ids) & test[C.USER_ID].isin(user_ids)]
    held = Holdout(VALIDATION_SHARE, args.seed).mask(train[C.USER_IDX].to_numpy(), train[C.MOVIE_IDX].to_numpy())

    def positions(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return np.searchsorted(user_ids, frame[C.USER_ID]), np.searchsorted(movie_ids, frame[C.MOVIE_ID])

    fit_rows, valid_rows = train[~held], train[held]
    shape = (user_ids.size, movie_ids.size)
    print(f"{args.data}: {len(train):,} train ({len(valid_rows):,} held out to choose), {len(test):,} test ratings")
    results = {}
    ranks = [int(r) for r in args.ranks.split(",")]
    lambdas = [float(x) for x in args.lambdas.split(",")]
    for rank, lam in [(0, 0.0), *itertools.product(ranks, lambdas)]:
        model = fit(*positions(fit_rows), fit_rows[C.RATING].to_numpy(), shape, rank, lam)
        valid_stars = predict(model, *positions(valid_rows), rank)
        threshold, valid_accuracy = best_threshold(valid_stars, valid_rows[C.LIKE].to_numpy())
        test_accuracy = ((predict(model, *positions(test), rank) >= threshold) == test[C.LIKE].to_numpy()).mean()
        results[(rank, lam)] = (valid_accuracy, test_accuracy)
        print(f"  rank {rank} lambda {lam:g}: validation accuracy {valid_accuracy:.4f}, test {test_accuracy:.4f}")
    bias = results[(0, 0.0)]
    chosen = max((key for key in results if key[0] > 0), key=lambda key: results[key][0])
    factors = results[chosen]
    print(f"bias model: test accuracy {bias[1]:.4f}")
    print(
        f"factorization (rank {chosen[0]}, lambda {chosen[1]:g}, chosen on validation): test accuracy {factors[1]:.4f}"
    )
    print(f"personal signal found: {factors[1] - bias[1]:+.4f} accuracy")


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        raise SystemExit(f"personal_signal: {error}") from None
