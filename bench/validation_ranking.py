"""Top-10 quality on the training job's validation holdout: how the rank head's settings were chosen.

    python bench/validation_ranking.py --data PREPARED_DIR --model MODEL_DIR [--model ...] [--output rank]

The holdout is the training job's own (TrainConfig's validation_fraction and
seed: 5% of train, by a hash of user and movie), so choices made here never
look at the test split. For each user with a holdout rating: candidates are
the catalogue movies the user did not rate in the rest of train, relevant are
the liked holdout movies; lists come from the scoring job's fast path and
top-K code, as in jobs/evaluate.py. `popular` (like-count in the rest of
train, the evaluation's strongest baseline) is printed first as the bar.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sparkrec.core import columns as C
from sparkrec.core import ranking
from sparkrec.score.config import MODEL_FILE
from sparkrec.score.factorize import factorize
from sparkrec.score.keras_io import catalogue_inputs, load_keras_model, scored_model
from sparkrec.score.scorers import Block, FastScorer, recommend_batch
from sparkrec.train.config import TrainConfig
from sparkrec.train.dataset import DataError, Holdout, read_frame

K = 10


class LikeCount:
    """Most popular: the same like-count for every user (the scorer interface of recommend_batch)."""

    tail = ()

    def __init__(self, movie_ids: np.ndarray, rated: pd.DataFrame):
        self.movie_ids = movie_ids
        likes = rated[rated[C.LIKE] == 1].groupby(C.MOVIE_ID).size()
        self.likes = pd.Series(movie_ids).map(likes).fillna(0).to_numpy(np.float32)

    def keys(self, block: Block) -> np.ndarray:
        keys = np.tile(self.likes, (len(block.user_idx), 1))
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys


def model_scorer(model_dir: Path, output: str, catalogue: pd.DataFrame, user_count: int) -> FastScorer:
    loaded = load_keras_model((model_dir / MODEL_FILE).read_bytes())
    model = scored_model(loaded, output)
    factorized = factorize(model, user_count, catalogue_inputs(model, catalogue))
    return FastScorer(factorized, catalogue[C.MOVIE_ID].to_numpy(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--output", default="auto", help="the model output that ranks (as conf/score.yaml)")
    args = parser.parse_args()
    defaults = TrainConfig()
    columns = [C.USER_ID, C.USER_IDX, C.MOVIE_ID, C.MOVIE_IDX, C.LIKE]
    train = read_frame(args.data / "train", columns)
    held = Holdout(defaults.validation_fraction, defaults.seed).mask(
        train[C.USER_IDX].to_numpy(), train[C.MOVIE_IDX].to_numpy()
    )
    rated, holdout = train[~held], train[held]
    catalogue = read_frame(args.data / "movies").sort_values(C.MOVIE_ID).reset_index(drop=True)
    users = rated.groupby(C.USER_ID).agg(**{C.USER_IDX: (C.USER_IDX, "first"), C.WATCHED: (C.MOVIE_ID, list)})
    users = users.reset_index().loc[lambda frame: frame[C.USER_ID].isin(holdout[C.USER_ID])]
    liked = holdout[holdout[C.LIKE] == 1]
    relevant = {int(user): set(group[C.MOVIE_ID]) for user, group in liked.groupby(C.USER_ID)}
    ratings = rated.groupby(C.MOVIE_ID).size().to_dict()
    user_count = json.loads((args.data / "manifest.json").read_text())["vocab_sizes"]["user"]
    scorers = {"popular": LikeCount(catalogue[C.MOVIE_ID].to_numpy(np.int64), rated)}
    scorers.update({str(path): model_scorer(path, args.output, catalogue, user_count) for path in args.model})
    print(f"{len(relevant):,} users with a liked holdout movie, {len(holdout):,} holdout ratings")
    for name, scorer in scorers.items():
        recommended = recommend_batch(scorer, users, K, block=64)
        lists = {int(u): g[C.MOVIE_ID].to_numpy() for u, g in recommended.groupby(C.USER_ID, sort=False)}
        quality = ranking.mean_ranking_metrics(lists, relevant, K)
        listed = ranking.mean_popularity(lists, ratings, K)
        print(
            f"{name}: NDCG@{K} {quality[f'ndcg@{K}']:.4f}, precision@{K} {quality[f'precision@{K}']:.4f}, "
            f"recall@{K} {quality[f'recall@{K}']:.4f}, train ratings per listed movie {listed:.1f}"
        )


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        raise SystemExit(f"validation_ranking: {error}") from None
