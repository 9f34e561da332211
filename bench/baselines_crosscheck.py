"""Cross-check the evaluate job's EASE and implicit-ALS figures with an independent implementation.

    python bench/baselines_crosscheck.py --data PREPARED_DIR --evaluation EVALUATION_DIR \
        [--ease-lambdas 10,30,...] [--ease-dislike-weights 1,0.5,...] [--ranks 16,32,...] [--reg-params ...]
        [--alphas ...] [--max-iter 20]
        [--signal like|binary|rating]

Nothing of sparkrec's evaluation, ranking or scoring code is used: pandas reads
the prepared splits, a numpy RNG holds out its own 10% of train for tuning,
EASE is written out here in numpy/scipy, implicit ALS is MLlib's ALS (the
baseline is MLlib's by definition) with factors collected to numpy, and the
top-10 lists and NDCG@10 are computed here, with the evaluate job's protocol:
every catalogue movie the user did not rate in train is a candidate (ties by
movieId), relevant = the user's liked test movies, binary gains, averaged
over the users with a liked test movie. Prints, per model, this script's
chosen setting and test NDCG@10 beside the evaluate job's, and their ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse

K = 10
KEYS = ["userId", "movieId", "rating", "like"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a prepare output directory")
    parser.add_argument("--evaluation", required=True, type=Path, help="the evaluate job's output on it")
    parser.add_argument("--ease-lambdas", default="10,30,100,300,1000,3000,10000")
    parser.add_argument(
        "--ease-dislike-weights", default="1,0.5,0.25,0", help="EASE's cell for a rated, not liked movie (liked: 1)"
    )
    parser.add_argument("--ranks", default="16,32,64,128")
    parser.add_argument("--reg-params", default="0.01,0.1,1")
    parser.add_argument("--alphas", default="0,1,10")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument(
        "--signal",
        default="like",
        choices=("like", "binary", "rating"),
        help="the implicit rating: +1/-1 by like, 1, or the stars",
    )
    return parser.parse_args()


class Protocol:
    """Users, movies and the known/target split of one evaluation."""

    def __init__(self, movies: np.ndarray, users: np.ndarray):
        self.movies, self.users = movies, users
        self.user_row = pd.Series(np.arange(len(users)), index=users)
        self.movie_col = pd.Series(np.arange(len(movies)), index=movies)

    def matrix(self, pairs: pd.DataFrame, values: np.ndarray | None = None) -> scipy.sparse.csr_matrix:
        """Users x movies: `values` at the rated cells (1 where not given)."""
        rows = self.user_row[pairs["userId"]].to_numpy()
        cols = self.movie_col[pairs["movieId"]].to_numpy()
        values = np.ones(len(pairs)) if values is None else values
        return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(len(self.users), len(self.movies)))

    def ndcg(self, scores_of, known: pd.DataFrame, target: pd.DataFrame) -> float:
        """Mean NDCG@K over the users with a liked target movie, their known movies excluded."""
        liked = target[target["like"] == 1].groupby("userId")["movieId"].apply(lambda s: set(self.movie_col[s]))
        known_matrix = self.matrix(known)
        discounts = 1.0 / np.log2(np.arange(2, K + 2))
        total = 0.0
        users = liked.index.to_numpy()
        for start in range(0, len(users), 512):
            block = users[start : start + 512]
            rows = self.user_row[block].to_numpy()
            scores = np.array(scores_of(rows), dtype=np.float64)
            scores[known_matrix[rows].nonzero()] = -np.inf
            for user, row in zip(block, scores):
                top = np.lexsort((np.arange(len(row)), -row))[:K]
                hits = np.fromiter((column in liked[user] for column in top), bool, K)
                total += discounts[hits].sum() / discounts[: min(K, len(liked[user]))].sum()
        return total / len(users)


def ease_weights(history: scipy.sparse.csr_matrix, lam: float) -> np.ndarray:
    gram = (history.T @ history).toarray()
    inverse = scipy.linalg.inv(gram + lam * np.eye(len(gram)))
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights


def ease_signal(pairs: pd.DataFrame, dislike_weight: float) -> np.ndarray:
    return np.where(pairs["like"] == 1, 1.0, dislike_weight)


def best_of(name: str, grid: list, score) -> tuple:
    results = {}
    for setting in grid:
        started = time.perf_counter()
        try:
            results[setting] = score(setting)
        except Exception as error:  # MLlib's solver on a singular system (implicit, alpha 0, strong regParam)
            if "SingularMatrixException" not in str(error):
                raise
            print(f"  {name} {setting}: not fitted, singular normal equations", flush=True)
            continue
        print(
            f"  {name} {setting}: holdout NDCG@{K} {results[setting]:.4f} ({time.perf_counter() - started:.0f}s)",
            flush=True,
        )
    return max(results, key=results.get)


def implicit_rating(pairs: pd.DataFrame, signal: str) -> np.ndarray:
    if signal == "like":
        return np.where(pairs["like"] == 1, 1.0, -1.0)
    return np.ones(len(pairs)) if signal == "binary" else pairs["rating"].to_numpy()


def als_factors(spark, protocol: Protocol, pairs: pd.DataFrame, setting: tuple, iters: int, signal: str):
    from pyspark.ml.recommendation import ALS

    rank, reg, alpha = setting
    frame = pd.DataFrame(
        {
            "u": protocol.user_row[pairs["userId"]].to_numpy().astype("int32"),
            "i": protocol.movie_col[pairs["movieId"]].to_numpy().astype("int32"),
            "r": implicit_rating(pairs, signal).astype("float32"),
        }
    )
    model = ALS(
        rank=rank,
        regParam=reg,
        alpha=alpha,
        implicitPrefs=True,
        maxIter=iters,
        seed=42,
        userCol="u",
        itemCol="i",
        ratingCol="r",
    ).fit(spark.createDataFrame(frame))
    users, items = np.zeros((len(protocol.users), rank)), np.zeros((len(protocol.movies), rank))
    for table, factors in ((users, model.userFactors), (items, model.itemFactors)):
        collected = factors.toPandas()
        table[collected["id"].to_numpy()] = np.stack(collected["features"].to_numpy())
    return users, items


def main() -> None:
    args = parse_args()
    train = pd.read_parquet(args.data / "train", columns=KEYS)
    test = pd.read_parquet(args.data / "test", columns=KEYS)
    movies = np.sort(pd.read_parquet(args.data / "movies", columns=["movieId"])["movieId"].to_numpy())
    protocol = Protocol(movies, np.unique(np.concatenate([train["userId"], test["userId"]])))
    held = np.random.default_rng(2026).random(len(train)) < 0.1
    fit, holdout = train[~held], train[held]
    job = json.loads((args.evaluation / "metrics.json").read_text())["models"]
    figures = {}

    lambdas = [float(value) for value in args.ease_lambdas.split(",")]
    dislike_weights = [float(value) for value in args.ease_dislike_weights.split(",")]

    def ease_fit_ndcg(setting: tuple) -> float:
        dislike_weight, lam = setting
        fit_history = protocol.matrix(fit, ease_signal(fit, dislike_weight))
        weights = ease_weights(fit_history, lam)
        return protocol.ndcg(lambda rows: fit_history[rows] @ weights, fit, holdout)

    dislike_weight, lam = best_of("ease", list(itertools.product(dislike_weights, lambdas)), ease_fit_ndcg)
    history = protocol.matrix(train, ease_signal(train, dislike_weight))
    weights = ease_weights(history, lam)
    figures["ease"] = (
        f"lambda={lam:g}, dislike_weight={dislike_weight:g}",
        protocol.ndcg(lambda rows: history[rows] @ weights, train, test),
    )

    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(f"/tmp/crosscheck-checkpoints-{time.time_ns()}")
    grid = list(
        itertools.product(
            [int(v) for v in args.ranks.split(",")],
            [float(v) for v in args.reg_params.split(",")],
            [float(v) for v in args.alphas.split(",")],
        )
    )

    def holdout_ndcg(setting):
        users, items = als_factors(spark, protocol, fit, setting, args.max_iter, args.signal)
        return protocol.ndcg(lambda rows: users[rows] @ items.T, fit, holdout)

    best = best_of("als_implicit", grid, holdout_ndcg)
    users, items = als_factors(spark, protocol, train, best, args.max_iter, args.signal)
    figures["als_implicit"] = (
        f"{args.signal}, rank={best[0]}, regParam={best[1]:g}, alpha={best[2]:g}",
        protocol.ndcg(lambda rows: users[rows] @ items.T, train, test),
    )

    print(f"\n| model | this script's setting | NDCG@{K} here | evaluate job | job / here |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, (setting, here) in figures.items():
        theirs = job[name]["ranking"][f"ndcg@{K}"] if name in job else float("nan")
        print(f"| {name} | {setting} | {here:.4f} | {theirs:.4f} | {theirs / here:.3f} |")


if __name__ == "__main__":
    main()
