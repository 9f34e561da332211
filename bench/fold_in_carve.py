"""Fold-in settings measured on a validation carve of held-out users' histories, never on their test ratings.

    python bench/fold_in_carve.py --data PREPARED_DIR --model MODEL_DIR [--users 1000] \
        [--settings 0:1,1:0.7:1:1,2:0.7:0.25:0.99] [--ease-lambdas 300,1000]

Takes up to --users users of interactions/ outside the model's training sample
(seeded) and drops a random 10% of each one's ratings (seed 42): those stand
for their test ratings, which a choice of settings must not see. The rest is
split again, 10% (seed 43) as the carve. Each steps:rate[:dislike weight[:energy]] setting places the
users by the other 90%, as the scoring job does (`TwoTowerScorer` with that
fold-in; 0 steps is the user tower alone), ranks the catalogue minus that
history, and prints NDCG@10 against the carved movies each user liked. EASE
(fitted on train, dislike weight 0.5) ranks the same histories for reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sparkrec.core import columns as C
from sparkrec.core import ranking
from sparkrec.evaluate import ease
from sparkrec.models import saved, twotower
from sparkrec.models import towers as retrieval
from sparkrec.score.keras_io import catalogue_inputs
from sparkrec.score.scorers import TwoTowerScorer, top_k_lists
from sparkrec.train.dataset import DataError, read_frame

K = 10
SHARE = 0.1
BLOCK = 256
EASE_DISLIKE_WEIGHT = 0.5


def split(rows: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rest, a random SHARE of the rows)."""
    drawn = np.random.default_rng(seed).random(len(rows)) < SHARE
    return rows[~drawn].reset_index(drop=True), rows[drawn].reset_index(drop=True)


def carve(data: Path, users: int, seed: int) -> tuple[pd.DataFrame, dict[int, set]]:
    """The carve's users as the scorer reads them (userId, user_idx 0, watched, liked) and their liked carved movies.

    Only users with a liked carved movie are kept.
    """
    interactions = read_frame(data / "interactions")
    trained = read_frame(data / "vocab" / "user")[C.USER_ID].to_numpy()
    outside = np.setdiff1d(interactions[C.USER_ID].unique(), trained)
    chosen = np.random.default_rng(seed).choice(outside, min(users, len(outside)), replace=False)
    rows = interactions[interactions[C.USER_ID].isin(chosen)].sort_values([C.USER_ID, C.MOVIE_ID])
    history, carved = split(split(rows.reset_index(drop=True), 42)[0], 43)
    liked = carved[carved[C.LIKE] == 1]
    relevant = {int(user): set(group[C.MOVIE_ID]) for user, group in liked.groupby(C.USER_ID)}
    history = history[history[C.USER_ID].isin(relevant)]
    groups = history.groupby(C.USER_ID)
    table = pd.DataFrame(
        {
            C.USER_ID: list(groups.groups),
            C.USER_IDX: C.UNKNOWN_INDEX,
            C.WATCHED: [group[C.MOVIE_ID].to_numpy() for _, group in groups],
            C.LIKED: [group.loc[group[C.LIKE] == 1, C.MOVIE_ID].to_numpy() for _, group in groups],
        }
    )
    return table, {user: relevant[user] for user in table[C.USER_ID]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepare output that sampled users")
    parser.add_argument("--model", type=Path, required=True, help="a two-tower model trained on it")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument(
        "--settings",
        default="0:1,1:0.7:0.25:1,2:0.7:0.25:1,2:0.7",
        help="steps:rate[:dislike weight[:energy]], comma-separated (defaults: FoldIn's)",
    )
    parser.add_argument("--ease-lambdas", default="300,1000", help="empty: no EASE")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    users, relevant = carve(args.data, args.users, args.seed)
    movies = read_frame(args.data / "movies").sort_values(C.MOVIE_ID).reset_index(drop=True)
    movie_ids = movies[C.MOVIE_ID].to_numpy(np.int64)
    model = saved.load(args.model / "model.keras")
    towers = twotower.arrays(model, catalogue_inputs(model, movies))
    watched = int(users[C.WATCHED].map(len).sum())
    print(f"{len(users)} held-out users with a liked carved movie; {watched} history ratings")
    for setting in args.settings.split(","):
        steps, rate, *weight = setting.split(":")
        fold_in = retrieval.FoldIn(int(steps), float(rate), *map(float, weight))
        scorer = TwoTowerScorer(towers, movie_ids, movies[C.MOVIE_IDX].to_numpy(np.int64), fold_in)
        ndcg = ranking.mean_ranking_metrics(top_k_lists(scorer, users, K, BLOCK), relevant, K)[f"ndcg@{K}"]
        print(
            f"fold-in {fold_in.steps} steps, rate {fold_in.rate}, dislike weight {fold_in.dislike_weight}, "
            f"energy {fold_in.energy} (width {scorer.vocabulary_movies.shape[1]}): "
            f"NDCG@{K} {ndcg:.4f}",
            flush=True,
        )
    if args.ease_lambdas:
        train = read_frame(args.data / "train")
        matrix = ease.Matrix(train, int(train[C.USER_IDX].max()) + 1, EASE_DISLIKE_WEIGHT)
        for lam in (float(x) for x in args.ease_lambdas.split(",")):
            weights = ease.weights(matrix.gram(), lam)
            scorer = ease.Ease(movie_ids, matrix.history, weights, matrix.columns(movies), EASE_DISLIKE_WEIGHT)
            ndcg = ranking.mean_ranking_metrics(top_k_lists(scorer, users, K, BLOCK), relevant, K)[f"ndcg@{K}"]
            print(f"ease, dislike weight {EASE_DISLIKE_WEIGHT}, lambda {lam:g}: NDCG@{K} {ndcg:.4f}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        raise SystemExit(f"fold_in_carve: {error}") from None
