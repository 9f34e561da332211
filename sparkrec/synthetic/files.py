"""Writing a generated dataset as one MovieLens release's files (sparkrec.prepare.releases describes them)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from sparkrec.core import columns as C
from sparkrec.prepare import releases
from sparkrec.synthetic.catalogue import Catalogue, genre_strings, make_catalogue
from sparkrec.synthetic.ratings import Ratings, StarCuts, chunk_ratings, rating_counts, star_cuts, star_levels
from sparkrec.synthetic.record import generator_record
from sparkrec.synthetic.shape import (
    COUNTS_STREAM,
    DEFAULT_LAYOUT,
    IMDB_URL_FORMAT,
    LAYOUTS,
    RELEASE_DATE_FORMAT,
    STAR_TEXT,
    STARS,
    USERS_PER_CHUNK,
    Settings,
    stream,
)
from sparkrec.synthetic.tags import chunk_tags, genome_scores, genome_tags


def write_frame(frame: pd.DataFrame, path: Path, file: releases.FileFormat, encoding: str, **options) -> int:
    """Write a small table in `file`'s format, its declared columns in order; return its rows.

    GroupLens CSV has a header and quotes only where needed; the .dat and u.* files
    have neither, so a field holding the separator cannot be written.
    """
    if file.schema is not None:
        frame = frame[file.schema.fieldNames()]
    if file.quote:
        frame.to_csv(path, index=False, lineterminator="\n", encoding=encoding, **options)
        return len(frame)
    text = frame.astype(str)
    for name in text.columns:
        if text[name].str.contains(file.sep, regex=False).any():
            raise ValueError(f"{path.name}: a {name} value holds the separator {file.sep!r}")
    path.write_bytes("".join(file.sep.join(row) + "\n" for row in text.itertuples(index=False)).encode(encoding))
    return len(frame)


def write_ratings(
    path: Path, layout: str, catalogue: Catalogue, chunks: list[Ratings], cuts: StarCuts
) -> dict[str, int]:
    """Stream every block to the layout's ratings file; return the number of ratings per star written."""
    file = LAYOUTS[layout].files["ratings"]
    stars = [STAR_TEXT[layout](s) for s in STARS]
    labels = pa.array(stars)
    histogram = np.zeros(len(STARS), dtype=np.int64)
    # Arrow's CSV writer is ~10x faster than pandas; "none" quoting is safe for numbers, and so
    # is putting the layout's separator in place of the comma afterwards.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as sink:
        if file.header:
            sink.write((",".join(file.schema.fieldNames()) + "\n").encode())
        for chunk in chunks:
            levels = star_levels(chunk, cuts)
            histogram += np.bincount(levels, minlength=len(STARS))
            table = pa.table(
                {
                    C.USER_ID: chunk.user_ids,
                    C.MOVIE_ID: catalogue.ids[chunk.movies].astype(np.int32),
                    C.RATING: labels.take(pa.array(levels)),
                    C.TIMESTAMP: chunk.timestamps,
                }
            )
            block = io.BytesIO()
            pacsv.write_csv(table, block, options)
            sink.write(block.getvalue().replace(b",", file.sep.encode()))
    written: dict[str, int] = {}
    for text, count in zip(stars, histogram):
        key = f"{float(text):.1f}"
        written[key] = written.get(key, 0) + int(count)
    return written


def movies_frame(catalogue: Catalogue, layout: str) -> pd.DataFrame:
    """The movies file: id, title and the pipe-joined genres in the layout's genre names, or,
    for ML-100K's u.item, a 0/1 flag per u.genre genre (IMAX has none there)."""
    if C.RELEASE_DATE not in LAYOUTS[layout].files["movies"].schema.fieldNames():
        return pd.DataFrame(
            {
                C.MOVIE_ID: catalogue.ids,
                C.TITLE: catalogue.titles,
                C.GENRES: genre_strings(catalogue.genres, releases.genre_names(LAYOUTS[layout].layout)),
            }
        )
    flags = {
        flag: catalogue.genres[:, C.GENRE_LIST.index(releases.GENRE_OF[name])].astype(np.int8)
        for flag, name in zip(C.ML100K_FLAG_COLUMNS, releases.ML100K_GENRES)
    }
    return pd.DataFrame(
        {
            C.MOVIE_ID: catalogue.ids,
            C.TITLE: catalogue.titles,
            C.RELEASE_DATE: [RELEASE_DATE_FORMAT.format(year=year) for year in catalogue.years],
            C.VIDEO_RELEASE_DATE: "",
            C.IMDB_URL: [IMDB_URL_FORMAT.format(imdb=imdb) for imdb in catalogue.imdb_ids],
            **flags,
        }
    )


def genre_list_frame() -> pd.DataFrame:
    """ML-100K's u.genre: each u.item flag's genre and position."""
    return pd.DataFrame({"genre": releases.ML100K_GENRES, "index": range(len(releases.ML100K_GENRES))})


def links_frame(catalogue: Catalogue) -> pd.DataFrame:
    """links.csv: imdbId zero-padded to 7 digits, tmdbId missing for a small share as in ML-20M."""
    tmdb = pd.array(catalogue.tmdb_ids, dtype="Int64")
    tmdb[catalogue.tmdb_missing] = pd.NA
    return pd.DataFrame(
        {
            C.MOVIE_ID: catalogue.ids,
            C.IMDB_ID: [f"{i:07d}" for i in catalogue.imdb_ids],
            C.TMDB_ID: tmdb,
        }
    )


def write_dataset(directory: Path, config: Settings, layout: str = DEFAULT_LAYOUT) -> dict:
    """Write every file of the dataset in `layout` into `directory`; return the generator.json record."""
    release = LAYOUTS[layout]
    catalogue = make_catalogue(config)
    counts = rating_counts(stream(config.seed, COUNTS_STREAM), config.users, config.movies)
    n_chunks = -(-config.users // USERS_PER_CHUNK)
    chunks = [chunk_ratings(config, catalogue, counts, k) for k in range(n_chunks)]
    cuts = star_cuts(chunks)
    ratings = release.files["ratings"]
    histogram = write_ratings(directory / ratings.name, layout, catalogue, chunks, cuts)
    names = genome_tags(config.genome_tags)
    # Each table is built only for a layout that has its file; every one draws from its own stream.
    tables = {
        "movies": lambda: movies_frame(catalogue, layout),
        "tags": lambda: pd.concat([chunk_tags(config, catalogue, chunk, k) for k, chunk in enumerate(chunks)]),
        "links": lambda: links_frame(catalogue),
        "genome_tags": lambda: pd.DataFrame({C.TAG_ID: np.arange(1, len(names) + 1), C.TAG: names}),
        "genome_scores": lambda: genome_scores(config, catalogue, names),
        "genre_list": genre_list_frame,
    }
    options = {"genome_scores": {"float_format": "%.5f"}}
    rows = {ratings.name: sum(histogram.values())}
    for table, build in tables.items():
        if table in release.files:
            file = release.files[table]
            rows[file.name] = write_frame(
                build(), directory / file.name, file, release.encoding, **options.get(table, {})
            )
    record = generator_record(config, layout, cuts, histogram, rows)
    (directory / "generator.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
