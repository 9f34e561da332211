"""What every model is measured by (like classification, top-K ranking), and ours minus each baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkrec.core import columns as C
from sparkrec.core import metrics, ranking
from sparkrec.evaluate import baselines
from sparkrec.evaluate.config import EvaluateError
from sparkrec.evaluate.data import EvalData

THRESHOLDED = ("accuracy", "precision", "recall", "f1")


LISTED_POPULARITY = "train_ratings_per_listed_movie"


def classification(labels: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """Metrics of one model's predictions on the labelled rows (every row must be predicted).

    AUC and log loss read P(like); the thresholded metrics read the model's
    own decision, which for ALS is the predicted rating against the like
    threshold rather than its calibrated probability against 0.5.
    """
    keys = [C.USER_ID, C.MOVIE_ID]
    joined = labels.merge(predictions, on=keys, how="left", validate="one_to_one")
    if joined[baselines.PROBABILITY].isna().any():
        raise EvaluateError(f"{int(joined[baselines.PROBABILITY].isna().sum())} test rows have no prediction")
    y = joined[C.LIKE].to_numpy()
    report = metrics.classification_report(y, joined[baselines.PROBABILITY].to_numpy())
    decided = joined[baselines.PREDICTED].to_numpy()
    report.update({name: getattr(metrics, name)(y, decided) for name in THRESHOLDED})
    return report


def ranking_quality(lists: dict[int, np.ndarray], data: EvalData, k: int, relevant: dict | None = None) -> dict:
    """The @k metrics of one model's lists (against `relevant`, by default the test split's), its catalogue
    coverage and how mainstream its lists are."""
    quality = ranking.mean_ranking_metrics(lists, data.relevant if relevant is None else relevant, k)
    quality[f"coverage@{k}"] = ranking.catalogue_coverage(lists, len(data.catalogue), k)
    quality[f"{LISTED_POPULARITY}@{k}"] = ranking.mean_popularity(lists, data.train_ratings, k)
    return quality


def targets(k: int) -> tuple[tuple[str, str, str], ...]:
    """(group, metric, label) of the two measures every model is compared on."""
    return ("classification", "accuracy", "accuracy"), ("ranking", f"ndcg@{k}", f"NDCG@{k}")


def comparison(results: dict[str, dict], k: int) -> dict[str, dict]:
    """Our model (the first of `results`) minus each baseline on the two target metrics; whether it is ahead on both."""
    ours, *others = results
    verdicts = {}
    for name in others:
        margins = {
            metric: results[ours][group][metric] - results[name][group][metric] for group, metric, _ in targets(k)
        }
        verdicts[name] = {**margins, "better_on_both": all(m > 0 for m in margins.values())}
    return verdicts
