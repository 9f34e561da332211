"""Every MovieLens release read natively: detection from the file names, each layout's files
(hand-written, with the awkward cases) read to exact rows, years and genre flags, and the
same data in two layouts prepared to the same splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparkrec.core import columns as C
from sparkrec.core.runinfo import StageTimer, get_logger
from sparkrec.prepare import features, movielens
from sparkrec.prepare import stages as prepare
from sparkrec.prepare.config import PrepareConfig
from sparkrec.prepare.movielens import InputError
from sparkrec.synthetic import generator as synthetic
from sparkrec.synthetic.catalogue import make_catalogue
from sparkrec.synthetic.shape import LAYOUTS, settings

from helpers import run_job

# As GroupLens ships it, blank last line included.
U_GENRE = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\nDrama|8\n"
    "Fantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\n"
    "Western|18\n\n"
)


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    """Files as given: str is written as UTF-8, bytes as they are (latin-1 fixtures)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (directory / name).write_bytes(data)
    return directory


# --- which release: the file names decide ---

NO_RELEASE = (
    "{dir}: no MovieLens release recognised; looked for "
    "ML-100K: u.data, u.item, u.user, u.genre; "
    "ML-1M: ratings.dat, movies.dat, users.dat; "
    "ML-10M: ratings.dat, movies.dat, tags.dat; "
    "ML-20M, ML-25M, ML-32M or ml-latest: ratings.csv, movies.csv, tags.csv, links.csv, genome-scores.csv, "
    "genome-tags.csv; "
    "ML-20M as Kaggle distributes it: rating.csv, movie.csv, tag.csv, link.csv, genome_scores.csv, genome_tags.csv"
)


@pytest.mark.parametrize(
    "names, layout, why",
    [
        (["u.data", "u.item"], "ml-100k", "u.data, u.item present"),
        (["u.data", "u.item", "u.user", "u.genre", "README"], "ml-100k", "u.data, u.item, u.user, u.genre present"),
        (
            ["ratings.dat", "movies.dat", "users.dat"],
            "ml-1m",
            "ratings.dat, movies.dat, users.dat present; tags.dat absent",
        ),
        (["ratings.dat", "movies.dat"], "ml-1m", "ratings.dat, movies.dat present; tags.dat absent"),
        (["ratings.dat", "movies.dat", "tags.dat"], "ml-10m", "tags.dat present"),
        # ML-20M and ML-25M (with genome files), ML-32M and ml-latest-small (without): one layout.
        (
            [
                "ratings.csv",
                "movies.csv",
                "tags.csv",
                "links.csv",
                "genome-scores.csv",
                "genome-tags.csv",
                "README.txt",
            ],
            "grouplens",
            "ratings.csv, movies.csv, tags.csv, links.csv, genome-scores.csv, genome-tags.csv present",
        ),
        (
            ["ratings.csv", "movies.csv", "tags.csv", "links.csv", "checksums.txt"],
            "grouplens",
            "ratings.csv, movies.csv, tags.csv, links.csv present",
        ),
        (["rating.csv", "movie.csv", "tag.csv"], "kaggle", "rating.csv, movie.csv, tag.csv present"),
    ],
)
def test_release_is_recognised_from_its_files(tmp_path, names, layout, why):
    directory = write(tmp_path / "ml", {name: "" for name in names})
    found = movielens.locate(None, str(directory))
    assert (found.layout, found.detected_by) == (layout, why)
    kept = {name for name in names if name not in ("README", "README.txt", "checksums.txt")}
    assert {file.name for file in found.files.values()} == kept


@pytest.mark.parametrize(
    "names, message",
    [
        ([], NO_RELEASE),
        (["README.txt", "ratings.txt", "movies.json"], NO_RELEASE),
        (
            ["u.data", "u.item", "ratings.csv", "movies.csv"],
            "{dir}: holds files of more than one MovieLens release: ML-100K (u.data, u.item present); "
            "ML-20M, ML-25M, ML-32M or ml-latest (ratings.csv, movies.csv present)",
        ),
        (["ratings.dat", "tags.dat"], "{dir}/movies.dat: required file missing (ml-10m layout)"),
        (["u.item", "u.genre"], "{dir}/u.data: required file missing (ml-100k layout)"),
    ],
    ids=["empty", "no-movielens-files", "two-releases", "10m-without-movies", "100k-without-ratings"],
)
def test_unusable_directory_fails_in_one_line(tmp_path, names, message):
    directory = write(tmp_path / "ml", {name: "" for name in names})
    with pytest.raises(InputError) as caught:
        movielens.locate(None, str(directory))
    assert str(caught.value) == message.format(dir=directory)
    assert "\n" not in str(caught.value)


def test_u_genre_in_another_order_fails_before_any_work(tmp_path):
    swapped = U_GENRE.replace("Action|1\nAdventure|2", "Adventure|1\nAction|2")
    directory = write(tmp_path / "ml", {"u.data": "", "u.item": "", "u.genre": swapped})
    found = movielens.locate(None, str(directory))
    with pytest.raises(InputError, match=r"u\.genre: lists unknown\|0 Adventure\|1 Action\|2 .*; u\.item's flags"):
        movielens.check_headers(None, found)


# --- each layout read to exact rows ---


def read(
    spark,
    directory: Path,
    config: PrepareConfig | None = None,
) -> tuple[movielens.MovieLensInput, prepare.Validated]:
    config = config or PrepareConfig()
    extracted = prepare.extract(spark, str(directory), config, StageTimer(get_logger("test")))
    return extracted.source, prepare.validate(extracted)


def rows(frame, *columns) -> list[tuple]:
    return sorted(tuple(row) for row in frame.select(*columns).collect())


def movies_of(validated: prepare.Validated) -> list[tuple]:
    return rows(validated.good("movies"), C.MOVIE_ID, C.TITLE, C.GENRES, C.RELEASE_YEAR)


def flags_of(validated: prepare.Validated) -> dict[int, set[str]]:
    table = features.movie_features(validated.good("movies"), None, 0).collect()
    return {row[C.MOVIE_ID]: {flag for flag in C.GENRE_FLAG_COLUMNS if row[flag]} for row in table}


def quarantine_of(validated: prepare.Validated, source: movielens.MovieLensInput) -> list[tuple]:
    return rows(prepare.quarantine(validated, source), C.SOURCE, C.REASON, C.RECORD)


ML100K = {
    "u.data": "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t3\t4\t878542960\n2\t4\t1\t878542961\n"
    "2\t9\t4\t878542962\n2\t1\t3.5\t878542963\noops\n",
    # 19 flags in u.genre's order: unknown, Action, Adventure, Animation, Children's, Comedy, Crime,
    # Documentary, Drama, Fantasy, Film-Noir, Horror, Musical, Mystery, Romance, Sci-Fi, Thriller, War, Western
    "u.item": (
        "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)"
        "|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|Mis\xe9rables, Les (1995)|22-Sep-1995||http://us.imdb.com/M/title-exact?Miserables"
        "|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0\n"
        "3|Star Wars: Episode IV - A New Hope (1977)|01-Jan-1977||http://us.imdb.com/M/title-exact?Star%20Wars"
        "|0|1|1|0|0|0|0|0|0|0|0|0|0|0|1|1|0|1|0\n"
        "4|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        '5|Good "Quote", A|05-May-1993||http://us.imdb.com/M/title-exact?Good'
        "|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "8|Nothing Flagged (1996)|01-Jan-1996||http://us.imdb.com/M/title-exact?Nothing"
        "|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "6|Broken Flags (1996)|01-Jan-1996||http://x|0|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "7|Too Few Fields (1997)|01-Jan-1997\n"
    ).encode("latin-1"),
    "u.genre": U_GENRE,
    "u.user": "1|24|M|technician|85711\n",
}


def test_ml100k_read_natively(spark, tmp_path):
    source, validated = read(spark, write(tmp_path / "ml-100k", ML100K))
    assert (source.layout, source.release.encoding) == ("ml-100k", "ISO-8859-1")
    assert set(source.files) == {"ratings", "movies", "genre_list", "users"}
    assert movies_of(validated) == [
        (1, "Toy Story (1995)", "Animation|Children|Comedy", 1995),
        (2, "Misérables, Les (1995)", "Drama|Musical", 1995),
        (3, "Star Wars: Episode IV - A New Hope (1977)", "Action|Adventure|Romance|Sci-Fi|War", 1977),
        (4, "unknown", C.NO_GENRES, None),
        # No year in the title: the release date's.
        (5, 'Good "Quote", A', "Comedy", 1993),
        (8, "Nothing Flagged (1996)", C.NO_GENRES, 1996),
    ]
    assert flags_of(validated) == {
        1: {"genre_animation", "genre_children", "genre_comedy"},
        2: {"genre_drama", "genre_musical"},
        3: {"genre_action", "genre_adventure", "genre_romance", "genre_sci_fi", "genre_war"},
        4: {"genre_no_genres_listed"},
        5: {"genre_comedy"},
        8: {"genre_no_genres_listed"},
    }
    assert rows(validated.good("ratings"), C.USER_ID, C.MOVIE_ID, C.RATING, C.TIMESTAMP) == [
        (1, 1, 5.0, 874965758),
        (1, 2, 3.0, 876893171),
        (2, 3, 4.0, 878542960),
        (2, 4, 1.0, 878542961),
    ]
    assert quarantine_of(validated, source) == sorted(
        [
            ("u.data", "malformed_row", "oops"),
            ("u.data", "rating_off_whole_star_grid", "2,1,3.5,878542963"),
            ("u.data", "unknown_movie", "2,9,4.0,878542962"),
            (
                "u.item",
                "malformed_row",
                "6|Broken Flags (1996)|01-Jan-1996||http://x|0|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
            ),
            ("u.item", "malformed_row", "7|Too Few Fields (1997)|01-Jan-1997"),
        ]
    )


ML1M = {
    "ratings.dat": "1::1::5::978300760\n1::2::3::978302109\n2::3::4::978301968\n2::4::2::978300275\n"
    "2::9::4::978824291\n3::1::4.5::978824292\n3::2::x::978824293\n",
    "movies.dat": (
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Mis\xe9rables, Les (1995)::Drama|Musical\n"
        "3::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi\n"
        '4::"Great Expectations" (1946)::Drama|Romance\n'
        "5::Odd Genre (1999)::Comedy|Documentry\n"
        "6::Broken Line\n"
    ).encode("latin-1"),
    "users.dat": "1::F::1::10::48067\n",
}


def test_ml1m_read_natively(spark, tmp_path):
    source, validated = read(spark, write(tmp_path / "ml-1m", ML1M))
    assert (source.layout, source.release.encoding) == ("ml-1m", "ISO-8859-1")
    assert movies_of(validated) == [
        (1, "Toy Story (1995)", "Animation|Children|Comedy", 1995),
        (2, "Misérables, Les (1995)", "Drama|Musical", 1995),
        (3, "Star Wars: Episode IV - A New Hope (1977)", "Action|Adventure|Fantasy|Sci-Fi", 1977),
        (4, '"Great Expectations" (1946)', "Drama|Romance", 1946),
    ]
    assert flags_of(validated) == {
        1: {"genre_animation", "genre_children", "genre_comedy"},
        2: {"genre_drama", "genre_musical"},
        3: {"genre_action", "genre_adventure", "genre_fantasy", "genre_sci_fi"},
        4: {"genre_drama", "genre_romance"},
    }
    assert rows(validated.good("ratings"), C.USER_ID, C.MOVIE_ID, C.RATING, C.TIMESTAMP) == [
        (1, 1, 5.0, 978300760),
        (1, 2, 3.0, 978302109),
        (2, 3, 4.0, 978301968),
        (2, 4, 2.0, 978300275),
    ]
    assert quarantine_of(validated, source) == sorted(
        [
            ("ratings.dat", "unknown_movie", "2,9,4.0,978824291"),
            ("ratings.dat", "rating_off_whole_star_grid", "3,1,4.5,978824292"),
            ("ratings.dat", "malformed_row", "3::2::x::978824293"),
            ("movies.dat", "unmapped_genre", "5,Odd Genre (1999),Comedy|Documentry"),
            ("movies.dat", "malformed_row", "6::Broken Line"),
        ]
    )


ML10M = {
    "ratings.dat": "1::1::5::838985046\n1::2::3.5::838983525\n2::3::4.5::868245777\n2::5::1::868245920\n"
    "3::9::4::868244562\n3::4::0.5::868244563\n3::6::2::868244564\n",
    "movies.dat": (
        "1::Toy Story (1995)::Adventure|Animation|Children|Comedy|Fantasy\n"
        "2::Misérables, Les (1995)::Drama\n"
        "3::Star Wars: Episode IV - A New Hope (a.k.a. Star Wars) (1977)::Action|Adventure|Sci-Fi\n"
        "4::Pull My Daisy (1958)::(no genres listed)\n"
        "5::Avatar (2009)::Action|Adventure|Sci-Fi|IMAX\n"
        "7::Old Name (1990)::Children's|Comedy\n"
    ).encode()
    + b"6::Bad \xff Bytes (2001)::Drama\n",
    "tags.dat": (
        b'1::1::Pixar::1188263867\n2::3::so "bad" it\'s good::1188263881\n2::5::3D::1188263882\n'
        b"3::9::orphan::1188263883\n3::4::::1188263884\n"
    )
    + b"3::1::caf\xe9::1188263885\n",
}


def test_ml10m_read_natively(spark, tmp_path):
    source, validated = read(spark, write(tmp_path / "ml-10m", ML10M))
    assert (source.layout, source.release.encoding) == ("ml-10m", "UTF-8")
    assert movies_of(validated) == [
        (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy", 1995),
        (2, "Misérables, Les (1995)", "Drama", 1995),
        (3, "Star Wars: Episode IV - A New Hope (a.k.a. Star Wars) (1977)", "Action|Adventure|Sci-Fi", 1977),
        (4, "Pull My Daisy (1958)", C.NO_GENRES, 1958),
        (5, "Avatar (2009)", "Action|Adventure|Sci-Fi|IMAX", 2009),
        (7, "Old Name (1990)", "Children|Comedy", 1990),
    ]
    assert flags_of(validated) == {
        1: {"genre_adventure", "genre_animation", "genre_children", "genre_comedy", "genre_fantasy"},
        2: {"genre_drama"},
        3: {"genre_action", "genre_adventure", "genre_sci_fi"},
        4: {"genre_no_genres_listed"},
        5: {"genre_action", "genre_adventure", "genre_sci_fi", "genre_imax"},
        7: {"genre_children", "genre_comedy"},
    }
    assert rows(validated.good("ratings"), C.USER_ID, C.MOVIE_ID, C.RATING, C.TIMESTAMP) == [
        (1, 1, 5.0, 838985046),
        (1, 2, 3.5, 838983525),
        (2, 3, 4.5, 868245777),
        (2, 5, 1.0, 868245920),
        (3, 4, 0.5, 868244563),
    ]
    assert rows(validated.good("tags"), C.USER_ID, C.MOVIE_ID, C.TAG, C.TIMESTAMP) == [
        (1, 1, "Pixar", 1188263867),
        (2, 3, 'so "bad" it\'s good', 1188263881),
        (2, 5, "3D", 1188263882),
    ]
    assert quarantine_of(validated, source) == sorted(
        [
            ("ratings.dat", "unknown_movie", "3,9,4.0,868244562"),
            ("ratings.dat", "unknown_movie", "3,6,2.0,868244564"),
            ("movies.dat", "undecodable_text", "6,Bad \ufffd Bytes (2001),Drama"),
            ("tags.dat", "unknown_movie", "3,9,orphan,1188263883"),
            ("tags.dat", "malformed_row", "3,4,,1188263884"),
            ("tags.dat", "undecodable_text", "3,1,caf\ufffd,1188263885"),
        ]
    )


# A small catalogue with an IMAX movie, a movie without genres, a title without a year, and tags.
GENERATED = settings(40, movies=100, seed=11)


def test_raw_cache_keeps_releases_apart(spark, tmp_path):
    """The same movies.dat bytes are latin-1 as ML-1M's and UTF-8 as ML-10M's: one's cached parse
    must not serve the other."""
    config = PrepareConfig(raw_cache=str(tmp_path / "cache"))
    titles = {}
    for layout, extra in (("ml-1m", {}), ("ml-10m", {"tags.dat": ""})):
        files = {"ratings.dat": ML1M["ratings.dat"], "movies.dat": ML1M["movies.dat"], **extra}
        _, validated = read(spark, write(tmp_path / layout, files), config)
        titles[layout] = dict(rows(validated.classified["movies"], C.MOVIE_ID, C.TITLE))[2]
    assert titles == {"ml-1m": "Misérables, Les (1995)", "ml-10m": "Mis\ufffdrables, Les (1995)"}
    assert len([p for p in (tmp_path / "cache").iterdir() if p.name.startswith("v2-movies-")]) == 2


def test_generated_layouts_read_back_whole(spark, tmp_path):
    """What the generator writes in each layout, the reader reads with nothing quarantined:
    the same movies, years and (but where a release lacks a genre) genres as the 20m layout."""
    config = GENERATED
    read_back = {}
    for layout in LAYOUTS:
        record = synthetic.generate(tmp_path / layout, config, layout=layout)
        source, validated = read(spark, tmp_path / layout)
        assert source.layout == LAYOUTS[layout].layout
        assert quarantine_of(validated, source) == []
        written = synthetic.table_rows(record, layout)
        assert {table: sum(counts.values()) for table, counts in validated.counts.items()} == {
            table: written[table] for table in movielens.PARSED if table in written
        }
        read_back[layout] = {row[0]: row[1:] for row in movies_of(validated)}
    expected = read_back["20m"]
    assert read_back["10m"] == read_back["1m"] == expected
    genres = [genre for _, listed, _ in expected.values() for genre in listed.split("|")]
    assert "IMAX" in genres and C.NO_GENRES in genres and None in [year for *_, year in expected.values()]
    catalogue = make_catalogue(config)
    year_of = dict(zip(catalogue.ids.tolist(), catalogue.years.tolist()))
    for movie, (title, listed, year) in expected.items():
        without_imax = "|".join(g for g in listed.split("|") if g != "IMAX") or C.NO_GENRES
        # u.item has no IMAX flag, and its release date dates a title without a year.
        assert read_back["100k"][movie] == (title, without_imax, year or year_of[movie])


# --- the same data in two layouts, prepared ---


def prepared(prepare_job, directory: Path, output: Path) -> dict:
    """The splits and movie table prepare writes for `directory`, and its manifest's input record."""
    manifest = prepare_job.main(
        [
            "--input",
            str(directory),
            "--output",
            str(output),
            "--set",
            "sample_users=all",
            "--set",
            "figures=false",
            "--set",
            "test_fraction=0.3",
        ]
    )
    tables = {
        name: pq.read_table(output / name).to_pandas().sort_values([C.MOVIE_ID, *keys]).reset_index(drop=True)
        for name, keys in (("train", [C.USER_ID]), ("test", [C.USER_ID]), ("movies", []))
    }
    return {**tables, "input": manifest["input"], "quarantine": manifest["quarantine"]}


# One logical dataset as ML-100K, ML-1M and GroupLens CSV files: whole stars, no IMAX, no tags.
SAME_RATINGS = [
    (user, movie, 1 + (user * movie) % 5, 978300000 + 100 * user + movie)
    for user in range(1, 9)
    for movie in range(1, 6)
]
SAME_DATA = {
    "ml-100k": {
        "u.data": "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in SAME_RATINGS),
        "u.item": (
            "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
            "2|Mis\xe9rables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0\n"
            "3|Star Wars: Episode IV - A New Hope (1977)|01-Jan-1977||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0|0\n"
            '4|Shawshank "Redemption", The (1994)|01-Jan-1994||http://x|0|0|0|0|0|0|1|0|1|0|0|0|0|0|0|0|0|0|0\n'
            "5|Pull My Daisy (1958)|01-Jan-1958||http://x|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        ).encode("latin-1"),
    },
    "ml-1m": {
        "ratings.dat": "".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in SAME_RATINGS),
        "movies.dat": (
            "1::Toy Story (1995)::Animation|Children's|Comedy\n"
            "2::Mis\xe9rables, Les (1995)::Drama|Musical\n"
            "3::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Sci-Fi\n"
            '4::Shawshank "Redemption", The (1994)::Crime|Drama\n'
            "5::Pull My Daisy (1958)::(no genres listed)\n"
        ).encode("latin-1"),
    },
    "csv": {
        "ratings.csv": "userId,movieId,rating,timestamp\n"
        + "".join(f"{u},{m},{r}.0,{t}\n" for u, m, r, t in SAME_RATINGS),
        "movies.csv": (
            "movieId,title,genres\n"
            "1,Toy Story (1995),Animation|Children|Comedy\n"
            '2,"Misérables, Les (1995)",Drama|Musical\n'
            "3,Star Wars: Episode IV - A New Hope (1977),Action|Adventure|Sci-Fi\n"
            '4,"Shawshank ""Redemption"", The (1994)",Crime|Drama\n'
            "5,Pull My Daisy (1958),(no genres listed)\n"
        ),
    },
}


@pytest.mark.slow
def test_same_data_in_three_layouts_prepares_to_the_same_splits(spark, prepare_job, tmp_path):
    outputs = {
        name: prepared(prepare_job, write(tmp_path / name, files), tmp_path / f"{name}-out")
        for name, files in SAME_DATA.items()
    }
    assert {
        name: [output["input"][key] for key in ("layout", "release", "detected_by", "encoding")]
        for name, output in outputs.items()
    } == {
        "ml-100k": ["ml-100k", "ML-100K", "u.data, u.item present", "ISO-8859-1"],
        "ml-1m": ["ml-1m", "ML-1M", "ratings.dat, movies.dat present; tags.dat absent", "ISO-8859-1"],
        "csv": ["grouplens", "ML-20M, ML-25M, ML-32M or ml-latest", "ratings.csv, movies.csv present", "UTF-8"],
    }
    assert all(not reasons for output in outputs.values() for reasons in output["quarantine"].values())
    reference = outputs.pop("csv")
    assert len(reference["train"]) + len(reference["test"]) == len(SAME_RATINGS)
    assert len(reference["test"]) > 0
    assert list(reference["movies"][C.TITLE])[:2] == ["Toy Story (1995)", "Misérables, Les (1995)"]
    for name, output in outputs.items():
        for table in ("train", "test", "movies"):
            pd.testing.assert_frame_equal(output[table], reference[table], obj=f"{name} {table}")


@pytest.mark.slow
def test_generated_10m_and_20m_prepare_to_the_same_splits(spark, prepare_job, tmp_path):
    config = GENERATED
    outputs = {}
    for layout in ("10m", "20m"):
        synthetic.generate(tmp_path / layout, config, layout=layout)
        outputs[layout] = prepared(prepare_job, tmp_path / layout, tmp_path / f"{layout}-out")
    for table in ("train", "test", "movies"):
        assert len(outputs["20m"][table]) > 0
        pd.testing.assert_frame_equal(outputs["10m"][table], outputs["20m"][table], obj=table)


@pytest.mark.slow
def test_job_names_what_it_looked_for_in_one_line(tmp_path):
    directory = write(tmp_path / "downloads", {"notes.txt": "not movielens\n"})
    result = run_job("prepare", "--input", str(directory), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "prepare: " + NO_RELEASE.format(dir=directory)
    assert not (tmp_path / "out").exists()
