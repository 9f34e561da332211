"""The training job's figures: the per-epoch history (the paper's Figure 4) and permutation importance."""

from __future__ import annotations

from pathlib import Path

import keras
import matplotlib

from sparkrec.models import pairwise as M
from sparkrec.models import towers as retrieval
from sparkrec.train import towertrain

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def history_panels(model: keras.Model) -> list[tuple[str, str]]:
    """(title, log key) of each panel of the training figure."""
    if retrieval.is_twotower(model):
        ndcg = f"ndcg@{towertrain.VALIDATION_K}"
        return [("like accuracy", "like_accuracy"), (f"ranking {ndcg}", ndcg), ("loss", "loss")]
    return [(f"like {metric}", M.like_metric_key(model, metric)) for metric in ("accuracy", "loss")]


def plot_history(history: list[dict], panels: list[tuple[str, str]], best_epoch: int, path: Path) -> None:
    """Each panel's log per epoch on train, validation and test (those logged): the paper's Figure 4."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
    epochs = [entry["epoch"] + 1 for entry in history]
    for axis, (title, key) in zip(axes, panels):
        for prefix, label in (("", "train"), ("val_", "validation"), ("test_", "test")):
            values = [entry.get(prefix + key) for entry in history]
            if all(value is not None for value in values):
                axis.plot(epochs, values, marker="o", label=label)
        axis.axvline(best_epoch + 1, color="grey", linestyle=":", label="kept epoch")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_importance(importance: dict, path: Path) -> None:
    names = list(importance["inputs"])[::-1]
    drops = [importance["inputs"][name]["auc_drop"] for name in names]
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    axis.barh(names, drops)
    axis.set_xlabel("test AUC drop when the input is shuffled")
    axis.set_title(f"Permutation importance ({importance['rows']:,} test rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
