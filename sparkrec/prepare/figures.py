"""The paper's exploratory figures (genre, release-year and rating distributions) as PNG."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: drivers on clusters have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import DataFrame  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from sparkrec.core import columns as C  # noqa: E402


def distributions(interactions: DataFrame) -> dict[str, pd.DataFrame]:
    """Rating records per genre, per release year and per star value (small frames)."""
    genre = interactions.select(F.explode(F.split(C.GENRES, r"\|")).alias("genre")).groupBy("genre").count()
    year = interactions.groupBy(C.RELEASE_YEAR).count().filter(F.col(C.RELEASE_YEAR).isNotNull())
    rating = interactions.groupBy(C.RATING).count()
    return {
        "genre": genre.toPandas().sort_values(["count", "genre"], ascending=[False, True]),
        "release_year": year.toPandas().sort_values(C.RELEASE_YEAR),
        "rating": rating.toPandas().sort_values(C.RATING),
    }


def _bar(frame: pd.DataFrame, x: str, title: str, xlabel: str, path: str, rotate: bool) -> None:
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.bar(frame[x].astype(str), frame["count"], color="#4472c4")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ratings")
    if rotate:
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(dists: dict[str, pd.DataFrame], directory: str) -> list[str]:
    """Figures 1-3 into a local directory; returns the file paths."""
    os.makedirs(directory, exist_ok=True)
    years = dists["release_year"]
    plots = [
        (dists["genre"], "genre", "Figure 1: genre distribution (sampled ratings)", "genre", "genre.png", True),
        (years, C.RELEASE_YEAR, "Figure 2: release-year distribution", "release year", "release_year.png", True),
        (dists["rating"], C.RATING, "Figure 3: rating distribution", "stars", "rating.png", False),
    ]
    paths = []
    for frame, x, title, xlabel, name, rotate in plots:
        path = os.path.join(directory, name)
        _bar(frame, x, title, xlabel, path, rotate)
        paths.append(path)
    return paths
