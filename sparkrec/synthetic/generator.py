"""Synthetic MovieLens, calibrated to ML-20M's shape, in the file layout of ML-20M or of
ML-10M, ML-1M or ML-100K (`LAYOUTS`, from sparkrec.prepare.releases).

Ratings come from a hidden preference model: user and movie biases, latent
factors, per-user genre affinities and a release-year effect, plus noise. The
latent score is cut into stars at quantile thresholds chosen on the generated
scores themselves, so the star histogram equals ML-20M's (to the rating) at any
scale while the ordering, which is what a model can learn, comes from the
preferences.

Which movies a user rates follows popularity and taste, as in real MovieLens,
where people rate what they chose to watch: a user meets movies by popularity
(twice as many as they will rate) and rates the ones whose personal appeal
(latent factors and genre affinities) draws them, so what a user rated tells a
model something about them, as it does in the real data.

Users are generated in fixed blocks of `USERS_PER_CHUNK`, each from its own
child seed, in two passes: the first draws every block's (user, movie,
timestamp, score), compactly in memory (24 bytes a rating); the second, once
the thresholds are known, turns scores into stars and streams each block to
the ratings file. The same arguments give byte-identical files; every layout
holds the same data, but for what a release cannot say (ML-100K and ML-1M:
whole stars, no tags; ML-100K: no IMAX).
"""

from __future__ import annotations

import os
from pathlib import Path

from sparkrec.core import outputs
from sparkrec.synthetic.files import write_dataset
from sparkrec.synthetic.shape import DEFAULT_LAYOUT, LAYOUTS, Settings

# --- the catalogue ---


# --- users and their ratings ---


# --- stars ---


# --- tags and the tag genome ---


# --- files ---


def table_rows(record: dict, layout: str) -> dict[str, int]:
    """generator.json's row counts by table (ratings, movies, ...) rather than file name."""
    return {
        table: record["rows"][file.name] for table, file in LAYOUTS[layout].files.items() if file.name in record["rows"]
    }


def generate(output: str | os.PathLike, config: Settings, force: bool = False, layout: str = DEFAULT_LAYOUT) -> dict:
    """Write the dataset in `layout` to `output` through the jobs' staged commit (`sparkrec.core.outputs`);
    return generator.json.

    `output` may be missing, empty or an earlier generated dataset (anything
    else only with `force`); it is replaced once the new dataset is complete,
    and a failed run leaves nothing behind.
    """
    with outputs.staged_output(None, os.fspath(output), "generate", force=force, keep_failed=False) as staging:
        return write_dataset(Path(staging), config, layout)
