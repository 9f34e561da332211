"""comparison.png of an evaluation: every model's classification and ranking figures as bars."""

from __future__ import annotations

import matplotlib
import numpy as np

from sparkrec.evaluate.report import CLASSIFICATION_COLUMNS, ranking_columns

matplotlib.use("Agg")  # headless: drivers on clusters have no display
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the backend)


def _bars(axis, results: dict, group: str, columns: tuple[tuple[str, str], ...], title: str) -> None:
    """One group of bars per metric, one bar per model."""
    width = 0.8 / len(results)
    positions = np.arange(len(columns))
    for i, (name, result) in enumerate(results.items()):
        values = [result[group][key] for key, _ in columns]
        axis.bar(positions + (i - (len(results) - 1) / 2) * width, values, width, label=name)
    axis.set_xticks(positions, [label for _, label in columns], rotation=30, ha="right")
    axis.set_title(title)


def chart(doc: dict, path: str) -> None:
    """Grouped bars per metric per model: classification (log loss left out) and ranking, each on its own scale."""
    k, results = doc["k"], doc["models"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    kept = tuple(column for column in CLASSIFICATION_COLUMNS if column[0] != "log_loss")
    _bars(left, results, "classification", kept, "Like classification of the test ratings")
    left.set_ylim(0, 1)
    _bars(right, results, "ranking", ranking_columns(k), f"Top-{k} ranking against liked test movies")
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(results))
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    figure.savefig(path, dpi=110)
    plt.close(figure)
