"""What the evaluation reads of every model it measures, ours and each baseline alike."""

from __future__ import annotations

from typing import Protocol

import pandas as pd
from pyspark.sql import DataFrame

from sparkrec.score.scorers import Scorer


class EvaluatedModel(Protocol):
    """A fitted model as `measure` reads it: it classifies rated rows and ranks through a scorer."""

    name: str  # its row in every table of the report

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        """(userId, movieId, like_probability, like_predicted) of each split row."""
        ...

    def scorer(self) -> Scorer:
        """What ranks the catalogue for a user (sparkrec.score.scorers.recommend_batch reads it)."""
        ...

    def details(self) -> dict:
        """What the report says of the model beside its figures: its settings, where it came from."""
        ...
