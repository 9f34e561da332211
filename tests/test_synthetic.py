"""The synthetic MovieLens generator: ML-20M layout, shape, calibration, determinism, atomic output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkrec.core import columns as C
from sparkrec.core import outputs
from sparkrec.prepare import releases
from sparkrec.synthetic import catalogue, files
from sparkrec.synthetic import generator as synthetic
from sparkrec.synthetic.catalogue import movie_titles, popularity_weights
from sparkrec.synthetic.ratings import apportion, chosen, popular_movies, rating_counts, ratings_cap, star_counts
from sparkrec.synthetic.shape import (
    DEFAULT_SEED,
    FIRST_TIMESTAMP,
    GENRE_TAGS,
    HALF_STARS_FROM,
    LAST_TIMESTAMP,
    LAYOUTS,
    STAR_COUNTS,
    STARS,
    TAGGING_FROM,
    settings,
    tag_vocabulary,
)

ROOT = Path(__file__).resolve().parents[1]
USERS = 1000
FILES = ("ratings.csv", "movies.csv", "tags.csv", "links.csv", "genome-scores.csv", "genome-tags.csv")
# Exactly as in the GroupLens ml-20m files.
HEADERS = {
    "ratings.csv": "userId,movieId,rating,timestamp",
    "movies.csv": "movieId,title,genres",
    "tags.csv": "userId,movieId,tag,timestamp",
    "links.csv": "movieId,imdbId,tmdbId",
    "genome-scores.csv": "movieId,tagId,relevance",
    "genome-tags.csv": "tagId,tag",
}
YEAR_AT_END = re.compile(r"\((\d{4})(?:-(?:\d{4})?)?\)$")
ML20M_LIKE_RATE = (2_200_156 + 5_561_926 + 1_534_824 + 2_898_660) / 20_000_263


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("synthetic") / "ml"
    synthetic.generate(output, settings(USERS))
    return output


@pytest.fixture(scope="module")
def ratings(dataset) -> pd.DataFrame:
    return pd.read_csv(dataset / "ratings.csv")


@pytest.fixture(scope="module")
def movies(dataset) -> pd.DataFrame:
    return pd.read_csv(dataset / "movies.csv", keep_default_na=False)


@pytest.fixture(scope="module")
def tags(dataset) -> pd.DataFrame:
    return pd.read_csv(dataset / "tags.csv", keep_default_na=False)


@pytest.fixture(scope="module")
def record(dataset) -> dict:
    return json.loads((dataset / "generator.json").read_text())


def test_files_and_headers(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == sorted([*FILES, "generator.json", outputs.MARKER])
    for name, header in HEADERS.items():
        assert (dataset / name).read_text().split("\n", 1)[0] == header


def test_row_counts_are_exact_and_recorded(dataset, record):
    lines = {name: (dataset / name).read_bytes().count(b"\n") - 1 for name in FILES}
    assert record["rows"] == lines
    # ML-20M's 20,000,263 / 138,493 ratings a user, exactly, whatever the seed.
    assert lines["ratings.csv"] == round(USERS * 20_000_263 / 138_493) == 144_414
    assert lines["movies.csv"] == lines["links.csv"] == 1000
    assert lines["genome-tags.csv"] == 50
    assert lines["genome-scores.csv"] == round(1000 * 10_381 / 27_278) * 50 == 19_050
    assert 0.015 < lines["tags.csv"] / lines["ratings.csv"] < 0.035


def test_record_holds_parameters(record):
    assert (record["seed"], record["users"], record["movies"]) == (DEFAULT_SEED, USERS, 1000)
    assert record["preference_model"]["latent_dim"] == 8
    assert len(record["stars"]["score_lower_bounds_with_half_stars"]) == 9
    assert len(record["stars"]["score_lower_bounds_before_half_stars"]) == 4


def test_every_user_has_at_least_20_ratings(ratings):
    per_user = ratings.groupby(C.USER_ID).size()
    assert list(per_user.index) == list(range(1, USERS + 1))
    assert per_user.min() >= 20
    assert per_user.max() > 300  # a long tail
    assert per_user.mean() == 144.414


def test_no_duplicate_pairs_and_sorted(ratings):
    assert not ratings.duplicated([C.USER_ID, C.MOVIE_ID]).any()
    pairs = ratings[C.USER_ID].to_numpy() * 10**7 + ratings[C.MOVIE_ID].to_numpy()
    assert (np.diff(pairs) > 0).all()


def test_every_referenced_movie_exists(dataset, ratings, movies, tags):
    known = set(movies[C.MOVIE_ID])
    assert movies[C.MOVIE_ID].is_unique
    assert set(ratings[C.MOVIE_ID]) <= known
    assert set(tags[C.MOVIE_ID]) <= known
    assert set(pd.read_csv(dataset / "genome-scores.csv")[C.MOVIE_ID]) <= known
    assert set(pd.read_csv(dataset / "links.csv")[C.MOVIE_ID]) == known


def test_histogram_is_ml20m(ratings, record):
    counts = ratings[C.RATING].value_counts().reindex(STARS, fill_value=0).to_numpy()
    target = np.array(list(STAR_COUNTS.values()))
    # Quantile thresholds on the generated scores hit ML-20M's histogram to the rating.
    assert (counts == apportion(len(ratings), target.astype(float))).all()
    assert np.abs(counts / counts.sum() - target / target.sum()).max() < 1e-4
    assert record["rating_histogram"] == {f"{s:.1f}": int(n) for s, n in zip(STARS, counts)}


def test_like_rate_is_ml20m(ratings):
    assert abs((ratings[C.RATING] >= 3.5).mean() - ML20M_LIKE_RATE) < 1e-4


def test_whole_stars_only_before_half_stars_existed(ratings):
    before = ratings[ratings[C.TIMESTAMP] < HALF_STARS_FROM]
    assert len(before) > 0.2 * len(ratings)
    assert (before[C.RATING] % 1 == 0).all()
    after = ratings[ratings[C.TIMESTAMP] >= HALF_STARS_FROM]
    assert (after[C.RATING] % 1 == 0.5).any()


def test_timestamps_in_range(ratings, tags):
    assert ratings[C.TIMESTAMP].between(FIRST_TIMESTAMP, LAST_TIMESTAMP).all()
    assert tags[C.TIMESTAMP].between(TAGGING_FROM, LAST_TIMESTAMP).all()
    rated = tags.merge(ratings, on=[C.USER_ID, C.MOVIE_ID], suffixes=("_tag", "_rating"))
    assert len(rated) == len(tags)
    assert (rated[f"{C.TIMESTAMP}_tag"] >= rated[f"{C.TIMESTAMP}_rating"]).all()


def test_titles_parse(movies):
    years = movies[C.TITLE].str.strip().str.extract(YEAR_AT_END)[0].dropna().astype(int)
    assert len(years) >= 0.99 * len(movies)
    assert years.between(1900, 2015).all()
    assert years.median() > 1980  # skewed recent
    assert movies[C.TITLE].str.contains(",").sum() > 20  # quoted in the CSV, as in MovieLens


def test_quirky_titles_survive_csv(dataset, movies):
    raw = (dataset / "movies.csv").read_text()
    assert '"' in raw and movies[C.TITLE].str.contains('"').any()
    assert len(movies) == raw.count("\n") - 1


def test_genres(movies):
    lists = movies[C.GENRES].str.split("|")
    assert lists.map(lambda g: set(g) <= set(C.GENRE_LIST)).all()
    assert lists.map(len).between(1, 4).all()
    assert lists[lists.map(lambda g: C.NO_GENRES in g)].map(len).eq(1).all()
    assert lists.map(lambda g: g == sorted(g, key=C.GENRE_LIST.index)).all()
    top_two = lists.explode().value_counts().index[:2]
    assert set(top_two) == {"Drama", "Comedy"}


def test_links(dataset):
    links = pd.read_csv(dataset / "links.csv", dtype={C.IMDB_ID: str})
    assert links[C.IMDB_ID].str.fullmatch(r"\d{7}").all()
    assert links[C.IMDB_ID].is_unique


def test_tags_come_from_the_vocabulary_and_follow_genres(tags, movies):
    assert set(tags[C.TAG]) <= set(tag_vocabulary())
    genre_of = {t: g for g, names in GENRE_TAGS.items() for t in names}
    tagged = tags.merge(movies, on=C.MOVIE_ID)
    genre_tags = tagged[tagged[C.TAG].isin(genre_of)]
    assert len(genre_tags) > 0.5 * len(tags)
    # A genre tag is only ever put on a movie of that genre.
    assert all(genre_of[t] in g.split("|") for t, g in zip(genre_tags[C.TAG], genre_tags[C.GENRES]))


def test_genome(dataset):
    genome_tags = pd.read_csv(dataset / "genome-tags.csv")
    scores = pd.read_csv(dataset / "genome-scores.csv")
    assert list(genome_tags[C.TAG_ID]) == list(range(1, 51))
    assert scores[C.RELEVANCE].between(0, 1).all()
    assert not scores.duplicated([C.MOVIE_ID, C.TAG_ID]).any()


def test_preferences_are_learnable(ratings):
    """A movie-mean predictor of like on held-out ratings clearly beats the majority class."""
    like = (ratings[C.RATING] >= 3.5).to_numpy()
    held_out = np.random.default_rng(0).random(len(ratings)) < 0.2
    train = pd.DataFrame({C.MOVIE_ID: ratings[C.MOVIE_ID][~held_out], "like": like[~held_out]})
    per_movie = train.groupby(C.MOVIE_ID)["like"].agg(["sum", "count"])
    prior = like[~held_out].mean()
    movie_rate = (per_movie["sum"] + 5 * prior) / (per_movie["count"] + 5)
    predicted = ratings[C.MOVIE_ID][held_out].map(movie_rate).fillna(prior).to_numpy() >= 0.5
    majority = max(like[held_out].mean(), 1 - like[held_out].mean())
    assert (predicted == like[held_out]).mean() > majority + 0.04


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    runs = {
        name: synthetic.generate(tmp_path / name, settings(300, seed=seed))
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    }
    for name in (*FILES, "generator.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "ratings.csv").read_bytes() != (tmp_path / "c" / "ratings.csv").read_bytes()
    assert (tmp_path / "a" / "movies.csv").read_bytes() != (tmp_path / "c" / "movies.csv").read_bytes()
    assert runs["a"]["rows"]["ratings.csv"] == runs["c"]["rows"]["ratings.csv"] == round(300 * 144.41353)


@pytest.mark.parametrize(("users", "movies"), [(50, 100), (20, 27_278), (3000, 1000)])
def test_rating_counts(users, movies):
    counts = rating_counts(np.random.default_rng(1), users, movies)
    assert counts.min() >= 20
    assert counts.max() <= ratings_cap(movies)
    room = ratings_cap(movies) - 20
    assert counts.sum() == min(round(users * 20_000_263 / 138_493), users * 20 + users * room // 2)


@pytest.mark.parametrize(("before", "after"), [(0, 0), (25, 0), (0, 25), (40_000, 60_000), (90, 10)])
def test_star_counts_split_between_eras(before, after):
    counts_before, counts_after = star_counts(before, after)
    assert (counts_before.sum(), counts_after.sum()) == (before, after)
    assert (counts_before >= 0).all() and (counts_after >= 0).all()
    half = np.array([s % 1 == 0.5 for s in STARS])
    assert counts_before[half].sum() == 0
    if before < 0.74 * (before + after):  # the half-star era can make up the difference
        target = np.array(list(STAR_COUNTS.values()), dtype=float)
        assert (counts_before + counts_after == apportion(before + after, target)).all()


def test_rated_movies_are_distinct_and_complete():
    rng = np.random.default_rng(3)
    popularity = popularity_weights(rng, 1000)
    # Heavy users (near the cap) take the exponential race, the rest the draws.
    counts = np.array([20, 21, 150, 400, 480, 499, 20])
    users, movies = popular_movies(rng, counts, popularity)
    assert (np.bincount(users, minlength=counts.size) == counts).all()
    pairs = users * 1000 + movies
    assert (np.diff(pairs) > 0).all()


def test_chosen_keeps_each_users_count_in_order_and_follows_appeal():
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(3), [400, 1000, 60])
    appeal = rng.normal(0.0, 0.5, users.size)
    counts = np.array([200, 500, 60])
    rows = chosen(rng, users, appeal, counts)
    assert (np.diff(rows) > 0).all()
    assert (np.bincount(users[rows], minlength=3) == counts).all()
    # A user who rates all they meet has no choice; the others favour what appeals to them.
    assert (rows[users[rows] == 2] == np.flatnonzero(users == 2)).all()
    # A choice blind to appeal would move the mean by 0.03 (one sd); this one moves it by 0.25.
    for user in (0, 1):
        assert appeal[rows][users[rows] == user].mean() > appeal[users == user].mean() + 0.1


def test_existing_data_is_not_replaced(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(outputs.OutputError, match=f"refusing to replace {precious}: it is not a generate output"):
        synthetic.generate(precious, settings(1))
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]


def test_earlier_dataset_is_replaced(tmp_path):
    output = tmp_path / "ml"
    synthetic.generate(output, settings(1, seed=1))
    synthetic.generate(output, settings(2, seed=1))
    assert json.loads((output / "generator.json").read_text())["users"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ml"]


def test_failed_run_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args):
        raise RuntimeError("killed")

    monkeypatch.setattr(files, "genome_scores", fail)
    with pytest.raises(RuntimeError):
        synthetic.generate(tmp_path / "ml", settings(1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"users": 0}, "--users must be at least 1, got 0"),
        ({"users": 5, "movies": 10}, "--movies must be at least 100, got 10"),
        ({"users": 5, "seed": -1}, "--seed must be non-negative, got -1"),
    ],
)
def test_bad_settings(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings(**arguments)


def test_cli_fails_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "generate.py"), "--output", str(tmp_path / "ml"), "--users", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert (result.returncode, result.stderr) == (1, "generate: --users must be at least 1, got 0\n")
    assert not (tmp_path / "ml").exists()


# --- the other releases' layouts (--layout) ---

LAYOUT_FILES = {
    "100k": ["u.data", "u.genre", "u.item"],
    "1m": ["movies.dat", "ratings.dat"],
    "10m": ["movies.dat", "ratings.dat", "tags.dat"],
    "20m": sorted(FILES),
}
ACCENTED = "Misérables, Les (1995)"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The same settings written in every layout, the first title accented to show each file's encoding."""
    root = tmp_path_factory.mktemp("layouts")
    titles = movie_titles
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalogue, "movie_titles", lambda rng, years: [ACCENTED, *titles(rng, years)[1:]])
        for layout in LAYOUTS:
            synthetic.generate(root / layout, settings(300, seed=7), layout=layout)
    return {layout: root / layout for layout in LAYOUTS}


def lines(path: Path, encoding: str) -> list[list[str]]:
    return [
        line.split({".dat": "::", ".data": "\t"}.get(path.suffix, "|"))
        for line in path.read_bytes().decode(encoding).splitlines()
    ]


def test_each_layout_writes_its_release_files(layouts):
    for layout, directory in layouts.items():
        written = sorted(p.name for p in directory.iterdir() if p.name not in ("generator.json", outputs.MARKER))
        assert written == LAYOUT_FILES[layout], layout
        record = json.loads((directory / "generator.json").read_text())
        assert record["layout"] == f"GroupLens ml-{layout}"
    assert lines(layouts["100k"] / "u.genre", "ascii") == [[g, str(i)] for i, g in enumerate(releases.ML100K_GENRES)]
    # No header, no quoting: every line has the layout's field count.
    for path, fields in [
        ("100k/u.data", 4),
        ("100k/u.item", 24),
        ("1m/ratings.dat", 4),
        ("1m/movies.dat", 3),
        ("10m/ratings.dat", 4),
        ("10m/movies.dat", 3),
        ("10m/tags.dat", 4),
    ]:
        rows = lines(layouts[path.split("/")[0]] / path.split("/")[1], "latin-1")
        assert {len(row) for row in rows} == {fields}, path
        assert rows[0][0].isdigit(), path


def test_latin_1_where_the_release_is(layouts):
    latin, utf8 = ACCENTED.encode("latin-1"), ACCENTED.encode("utf-8")
    for path, encoded in [
        ("100k/u.item", latin),
        ("1m/movies.dat", latin),
        ("10m/movies.dat", utf8),
        ("20m/movies.csv", b'"' + utf8 + b'"'),
    ]:
        data = (layouts[path.split("/")[0]] / path.split("/")[1]).read_bytes()
        assert encoded in data and (utf8 if encoded == latin else latin) not in data, path


def test_each_layout_names_genres_as_its_release(layouts):
    reference = pd.read_csv(layouts["20m"] / "movies.csv", keep_default_na=False)
    genres = dict(zip(reference[C.MOVIE_ID], reference[C.GENRES]))
    listed = set("|".join(genres.values()).split("|"))
    assert {"Children", "IMAX", C.NO_GENRES} <= listed
    for layout, renamed in [("10m", {}), ("1m", {"Children": "Children's"})]:
        movies = lines(layouts[layout] / "movies.dat", "latin-1" if layout == "1m" else "utf-8")
        assert {int(m): g for m, _, g in movies} == {
            m: "|".join(renamed.get(g, g) for g in names.split("|")) for m, names in genres.items()
        }
    flags = {
        int(row[0]): [name for name, flag in zip(releases.ML100K_GENRES, row[5:]) if flag == "1"]
        for row in lines(layouts["100k"] / "u.item", "latin-1")
    }
    as_100k = {"Children": "Children's", C.NO_GENRES: "unknown", "IMAX": None}
    for movie, names in genres.items():
        assert flags[movie] == [as_100k.get(g, g) for g in names.split("|") if as_100k.get(g, g)], movie


def test_whole_star_layouts_round_half_stars_up_and_keep_the_like_labels(layouts):
    reference = pd.read_csv(layouts["20m"] / "ratings.csv")
    assert (reference[C.RATING] % 1 == 0.5).any()
    for layout, path in [("100k", "u.data"), ("1m", "ratings.dat"), ("10m", "ratings.dat")]:
        table = pd.DataFrame(lines(layouts[layout] / path, "ascii"), columns=HEADERS["ratings.csv"].split(","))
        for column in (C.USER_ID, C.MOVIE_ID, C.TIMESTAMP):
            assert (table[column].astype(int) == reference[column]).all(), (layout, column)
        stars = table[C.RATING].astype(float)
        if layout == "10m":
            assert (stars == reference[C.RATING]).all() and "4" in set(table[C.RATING])
        else:
            assert set(table[C.RATING]) == {"1", "2", "3", "4", "5"}
            assert (stars == np.ceil(reference[C.RATING])).all()
            assert ((stars >= 3.5) == (reference[C.RATING] >= 3.5)).all()
    assert json.loads((layouts["1m"] / "generator.json").read_text())["rating_histogram"] == {
        f"{s:.1f}": int((np.ceil(reference[C.RATING]) == s).sum()) for s in (1, 2, 3, 4, 5)
    }


def test_cli_writes_a_layout(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "generate.py"),
            "--output",
            str(tmp_path / "ml"),
            "--users",
            "25",
            "--movies",
            "100",
            "--layout",
            "1m",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    ratings = (tmp_path / "ml" / "ratings.dat").read_text().count("\n")
    assert (
        result.stdout == f"generate: wrote {ratings:,} ratings of 25 users on 100 movies and 0 tags to "
        f"{tmp_path / 'ml'} (1m layout)\n"
    )
