"""sparkrec.prepare.movielens function by function, on tiny literal files: what tests/test_releases.py
(release detection, each layout read through prepare) leaves out: a directory that is not
there, the files locate records, header checks, how a CSV line is parsed or set aside, the
genre and year columns, Kaggle timestamps, the raw cache."""

from __future__ import annotations

import hashlib

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.prepare import movielens, releases
from sparkrec.prepare.movielens import InputError, InputFile

from helpers import frame, write_files

RATINGS = "userId int, movieId int, rating double, timestamp long, _corrupt_record string"
MOVIES = "movieId int, title string, genres string, _corrupt_record string"
MOVIE_COLUMNS = "movieId int, title string, genres string, release_year int, _corrupt_record string"
HEADER = "userId,movieId,rating,timestamp\n"


# --- locate: what test_releases.py does not try ---


@pytest.mark.parametrize(
    "make",
    [lambda tmp: tmp / "nowhere", lambda tmp: write_files(tmp, {"ratings.csv": ""}) / "ratings.csv"],
    ids=["missing", "a-file"],
)
def test_locate_needs_a_directory(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        movielens.locate(None, str(path))
    assert str(caught.value) == f"input directory not found: {path}"


def test_locate_records_each_present_file_and_skips_absent_optional_ones(tmp_path):
    directory = write_files(
        tmp_path / "ml",
        {"ratings.csv": HEADER + "1,1,4.0,5\n", "movies.csv": "m\n", "links.csv": "", "README.txt": "x"},
    )
    found = movielens.locate(None, str(directory) + "/")
    assert found.files == {
        "ratings": InputFile("ratings", "ratings.csv", f"{directory}/ratings.csv", 42),
        "movies": InputFile("movies", "movies.csv", f"{directory}/movies.csv", 2),
        "links": InputFile("links", "links.csv", f"{directory}/links.csv", 0),
    }
    assert found.schema("ratings") == C.RATINGS_SCHEMA


@pytest.mark.parametrize(
    "names, missing",
    [
        (["movies.csv", "tags.csv"], "ratings.csv: required file missing (grouplens layout)"),
        (["rating.csv", "tag.csv", "link.csv"], "movie.csv: required file missing (kaggle layout)"),
        (["ratings.dat", "users.dat"], "movies.dat: required file missing (ml-1m layout)"),
    ],
)
def test_locate_names_the_missing_required_file(tmp_path, names, missing):
    directory = write_files(tmp_path / "ml", {name: "" for name in names})
    with pytest.raises(InputError) as caught:
        movielens.locate(None, str(directory))
    assert str(caught.value) == f"{directory}/{missing}"


def test_fingerprint_records_each_files_sha256(tmp_path):
    contents = {"ratings.csv": HEADER, "movies.csv": "movieId,title,genres\n"}
    found = movielens.locate(None, str(write_files(tmp_path / "ml", contents)))
    movielens.fingerprint(found)
    assert {file.name: file.sha256 for file in found.files.values()} == {
        name: hashlib.sha256(text.encode()).hexdigest() for name, text in contents.items()
    }


# --- headers ---


@pytest.mark.parametrize(
    "header",
    [
        "userId,movieId,rating,timestamp",
        "userId,movieId,rating,timestamp\r",
        " userId , movieId,rating,timestamp",
        "\ufeffuserId,movieId,rating,timestamp",
        "userId,movieId,rating,timestamp,comment",  # columns past the declared ones are never read
    ],
)
def test_check_header_accepts(tmp_path, header):
    path = write_files(tmp_path, {"ratings.csv": header + "\n1,2,3.0,4\n"}) / "ratings.csv"
    movielens.check_header(None, str(path), C.RATINGS_SCHEMA)


@pytest.mark.parametrize(
    "header, problem",
    [
        ("userId,movieId,rating", "missing column(s) timestamp in header userId,movieId,rating"),
        ("userId,rating", "missing column(s) movieId, timestamp in header userId,rating"),
        ("UserId,movieId,rating,timestamp", "missing column(s) userId in header UserId,movieId,rating,timestamp"),
        (
            "userId;movieId;rating;timestamp",
            "missing column(s) userId, movieId, rating, timestamp in header userId;movieId;rating;timestamp",
        ),
        (
            "movieId,userId,rating,timestamp",
            "header movieId,userId,rating,timestamp is not in the expected order userId,movieId,rating,timestamp",
        ),
        (
            "id,userId,movieId,rating,timestamp",
            "header id,userId,movieId,rating,timestamp is not in the expected order userId,movieId,rating,timestamp",
        ),
    ],
)
def test_check_header_rejects_in_one_line(tmp_path, header, problem):
    path = write_files(tmp_path, {"ratings.csv": header + "\n"}) / "ratings.csv"
    with pytest.raises(InputError) as caught:
        movielens.check_header(None, str(path), C.RATINGS_SCHEMA)
    assert str(caught.value) == f"{path}: {problem}"


def test_check_headers_checks_every_csv_with_a_header(tmp_path):
    directory = write_files(
        tmp_path / "ml",
        {"ratings.csv": HEADER, "movies.csv": "movieId,title,genres\n", "links.csv": "movieId,tmdbId,imdbId\n"},
    )
    with pytest.raises(InputError, match=r"links\.csv: header movieId,tmdbId,imdbId is not in the expected order"):
        movielens.check_headers(None, movielens.locate(None, str(directory)))


def test_check_headers_leaves_headerless_files_alone(tmp_path):
    directory = write_files(tmp_path / "ml", {"ratings.dat": "1::1::5::978300760\n", "movies.dat": "1::A::Drama\n"})
    movielens.check_headers(None, movielens.locate(None, str(directory)))


# --- read_csv: the declared schema, and lines that do not fit it ---


def test_read_csv_sets_aside_lines_that_do_not_fit(spark, tmp_path):
    path = (
        write_files(
            tmp_path,
            {
                "ratings.csv": (
                    HEADER
                    + "1,2,3.5,100\n"
                    + "x,2,3.5,101\n"
                    + "1,2,3.5,102,extra\n"
                    + "1,2\n"
                    + "1,,4.0,103\n"  # an empty field is null, not corrupt: validation's null check catches it
                    + "\n"  # blank lines are skipped
                    + "1, 3 ,4.0,104\n"
                )
            },
        )
        / "ratings.csv"
    )
    expected = frame(
        spark,
        RATINGS,
        [
            (1, 2, 3.5, 100, None),
            (None, 2, 3.5, 101, "x,2,3.5,101"),
            (1, 2, 3.5, 102, "1,2,3.5,102,extra"),
            (1, 2, None, None, "1,2"),
            (1, None, 4.0, 103, None),
            (1, None, 4.0, 104, "1, 3 ,4.0,104"),
        ],
    )
    actual = movielens.read_csv(spark, str(path), releases.GROUPLENS.files["ratings"], releases.UTF_8)
    assertDataFrameEqual(actual, expected)


def test_read_csv_unquotes_grouplens_titles(spark, tmp_path):
    path = (
        write_files(
            tmp_path,
            {
                "movies.csv": (
                    "movieId,title,genres\n"
                    '1,"Misérables, Les (1995)",Drama\n'
                    '2,"Shawshank ""Redemption"", The (1994)",Crime|Drama\n'
                    '3,Plain "Quote" (1990),Drama\n'
                    '4,"Unterminated,Drama\n'
                )
            },
        )
        / "movies.csv"
    )
    expected = frame(
        spark,
        MOVIES,
        [
            (1, "Misérables, Les (1995)", "Drama", None),
            (2, 'Shawshank "Redemption", The (1994)', "Crime|Drama", None),
            (3, 'Plain "Quote" (1990)', "Drama", None),
            (4, "Unterminated,Drama", None, '4,"Unterminated,Drama'),
        ],
    )
    actual = movielens.read_csv(spark, str(path), releases.GROUPLENS.files["movies"], releases.UTF_8)
    assertDataFrameEqual(actual, expected)


@pytest.mark.parametrize(
    "encoding, title", [(releases.LATIN_1, "Misérables (1995)"), (releases.UTF_8, "Mis\ufffdrables (1995)")]
)
def test_read_csv_decodes_dat_files_by_the_releases_encoding(spark, tmp_path, encoding, title):
    path = (
        write_files(
            tmp_path,
            {
                "movies.dat": (
                    '1::"Great" Expectations, The (1946)::Drama\n'  # nothing is quoted in a .dat file
                    "2::Mis\xe9rables (1995)::Drama\n"
                    "3::One::Field::Too Many\n"
                ).encode("latin-1")
            },
        )
        / "movies.dat"
    )
    expected = frame(
        spark,
        MOVIES,
        [
            (1, '"Great" Expectations, The (1946)', "Drama", None),
            (2, title, "Drama", None),
            (3, "One", "Field", "3::One::Field::Too Many"),
        ],
    )
    assertDataFrameEqual(movielens.read_csv(spark, str(path), releases.ML_1M.files["movies"], encoding), expected)


# --- genres and years ---


def test_our_genres_maps_every_releases_names(spark):
    genres = frame(
        spark,
        "genres string",
        [
            ("Animation|Children's|Comedy",),
            ("Children|IMAX",),
            ("unknown",),
            (C.NO_GENRES,),
            ("Documentry|Drama",),
            (None,),
        ],
    )
    expected = frame(
        spark,
        "genres string",
        [
            ("Animation|Children|Comedy",),
            ("Children|IMAX",),
            (C.NO_GENRES,),
            (C.NO_GENRES,),
            # Kept as written, for validation to quarantine as unmapped_genre.
            ("Documentry|Drama",),
            (None,),
        ],
    )
    assertDataFrameEqual(genres.select(movielens.our_genres(F.col(C.GENRES)).alias(C.GENRES)), expected)


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "ml-10m", "grouplens", "kaggle"])
def test_every_genre_a_release_writes_reads_back_as_ours(layout):
    written = releases.genre_names(layout)
    assert {genre: releases.GENRE_OF[name] for genre, name in written.items()} == {g: g for g in C.GENRE_LIST}


def test_genre_names_are_each_releases_own():
    assert releases.genre_names("ml-1m")["Children"] == "Children's"
    assert releases.genre_names("ml-10m")["Children"] == "Children"
    assert releases.genre_names("ml-100k")[C.NO_GENRES] == "unknown"
    # ML-100K has no IMAX flag: the name is ours, for a reader that never meets it.
    assert releases.genre_names("ml-100k")["IMAX"] == "IMAX"


U_ITEM = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in C.U_ITEM_SCHEMA.fields) + ", _corrupt_record string"


def flags(*names: str) -> tuple:
    """u.item's 19 flags, in u.genre's order (releases.ML100K_GENRES), set for the genres named."""
    return tuple(1 if name in names else 0 for name in releases.ML100K_GENRES)


def u_item(movie, title, date, flag_values, corrupt=None) -> tuple:
    return (movie, title, date, None, "http://x", *flag_values, corrupt)


def test_flagged_genres_lists_u_items_flags_in_our_names(spark):
    items = frame(
        spark,
        U_ITEM,
        [
            u_item(1, "A", None, flags("Animation", "Children's", "Comedy")),
            u_item(2, "B", None, flags()),
            u_item(3, "C", None, flags("unknown")),
            u_item(4, "D", None, flags("Western", "Action")),
            u_item(5, "E", None, (2,) + flags()[1:]),
            u_item(6, "F", None, (None,) * 19),
        ],
    )
    expected = frame(
        spark,
        "movieId int, genres string",
        [
            (1, "Animation|Children|Comedy"),
            (2, C.NO_GENRES),
            (3, C.NO_GENRES),
            (4, "Action|Western"),  # u.genre's order, whatever order they are named in
            (5, None),
            (6, None),  # a flag other than 0 or 1: no genre list, a malformed row
        ],
    )
    assertDataFrameEqual(items.select(C.MOVIE_ID, movielens.flagged_genres().alias(C.GENRES)), expected)


def test_movie_columns_of_u_item_years_from_title_else_release_date(spark):
    comedy = flags("Comedy")
    items = frame(
        spark,
        U_ITEM,
        [
            u_item(1, "Toy Story (1995)", "01-Jan-1995", comedy),
            u_item(2, "Heat (1995)", "01-Jan-1996", comedy),  # the title's year wins
            u_item(3, 'Good "Quote", A', "05-May-1993", comedy),
            u_item(4, "Spaced Date", " 01-Jan-1977 ", comedy),
            u_item(5, "unknown", None, flags("unknown")),
            u_item(6, "Bad Flag (1996)", "01-Jan-1996", (0, 2) + comedy[2:]),
            u_item(7, "Too Few Fields (1997)", "01-Jan-1997", (None,) * 19, "7|Too Few Fields (1997)|01-Jan-1997"),
        ],
    )
    expected = frame(
        spark,
        MOVIE_COLUMNS,
        [
            (1, "Toy Story (1995)", "Comedy", 1995, None),
            (2, "Heat (1995)", "Comedy", 1995, None),
            (3, 'Good "Quote", A', "Comedy", 1993, None),
            (4, "Spaced Date", "Comedy", 1977, None),
            (5, "unknown", C.NO_GENRES, None, None),
            # No line kept by Spark: the fields, written back as u.item writes them.
            (
                6,
                "Bad Flag (1996)",
                None,
                1996,
                "6|Bad Flag (1996)|01-Jan-1996||http://x|0|2" + "|0" * 3 + "|1" + "|0" * 13,
            ),
            # Spark's own record of the line stays.
            (7, "Too Few Fields (1997)", None, 1997, "7|Too Few Fields (1997)|01-Jan-1997"),
        ],
    )
    assertDataFrameEqual(movielens.movie_columns(items), expected)


def test_movie_columns_of_a_genre_list_maps_names_and_reads_the_titles_year(spark):
    movies = frame(
        spark,
        MOVIES,
        [
            (1, "Toy Story (1995)", "Animation|Children's", None),
            (2, "Fawlty Towers (1975-1979)", "Comedy", None),
            (3, "Babylon 5", "Sci-Fi", None),
            (4, "Broken", None, "4,Broken"),
        ],
    )
    expected = frame(
        spark,
        MOVIE_COLUMNS,
        [
            (1, "Toy Story (1995)", "Animation|Children", 1995, None),
            (2, "Fawlty Towers (1975-1979)", "Comedy", 1975, None),
            (3, "Babylon 5", "Sci-Fi", None, None),
            (4, "Broken", None, None, "4,Broken"),
        ],
    )
    assertDataFrameEqual(movielens.movie_columns(movies), expected)


# --- parse: Kaggle's timestamps ---


def kaggle(tmp_path, ratings: str) -> movielens.MovieLensInput:
    directory = write_files(
        tmp_path / "kaggle", {"rating.csv": HEADER + ratings, "movie.csv": "movieId,title,genres\n"}
    )
    return movielens.locate(None, str(directory))


def test_parse_turns_kaggle_timestamps_into_epoch_seconds(spark, tmp_path):
    found = kaggle(tmp_path, "1,2,3.5,2015-04-02 23:10:58\n1,3,4.0,1970-01-01 00:00:00\n1,4,4.0,\n")
    expected = frame(spark, RATINGS, [(1, 2, 3.5, 1428016258, None), (1, 3, 4.0, 0, None), (1, 4, 4.0, None, None)])
    assertDataFrameEqual(movielens.parse(spark, found, "ratings"), expected)


def test_parse_makes_an_unparseable_kaggle_timestamp_null(spark, tmp_path):
    found = kaggle(tmp_path, "1,2,3.5,2015-04-02 23:10:58\n1,3,4.0,yesterday\n")
    expected = frame(spark, RATINGS, [(1, 2, 3.5, 1428016258, None), (1, 3, 4.0, None, None)])
    assertDataFrameEqual(movielens.parse(spark, found, "ratings"), expected)


def test_parse_leaves_epoch_timestamps_as_read(spark, tmp_path):
    directory = write_files(tmp_path / "ml", {"ratings.csv": HEADER + "1,2,3.5,1428016258\n", "movies.csv": ""})
    found = movielens.locate(None, str(directory))
    expected = frame(spark, RATINGS, [(1, 2, 3.5, 1428016258, None)])
    assertDataFrameEqual(movielens.parse(spark, found, "ratings"), expected)


# --- read_table: the raw cache ---


def test_read_table_serves_the_cached_parse_of_a_files_checksum(spark, tmp_path):
    text = HEADER + "1,2,3.5,100\n1,3,oops,101\n"
    directory = write_files(tmp_path / "ml", {"ratings.csv": text, "movies.csv": ""})
    found = movielens.locate(spark, str(directory))
    movielens.fingerprint(found)
    cache = tmp_path / "cache"
    expected = frame(spark, RATINGS, [(1, 2, 3.5, 100, None), (1, 3, None, 101, "1,3,oops,101")])
    assertDataFrameEqual(movielens.read_table(spark, found, "ratings", str(cache)), expected)
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    assert [p.name for p in cache.iterdir()] == [f"v{movielens.CACHE_VERSION}-ratings-grouplens-{key}"]
    # A file that changed after it was fingerprinted: the entry of the checksum taken is what is read.
    (directory / "ratings.csv").write_text(HEADER + "9,9,1.0,9\n")
    assertDataFrameEqual(movielens.read_table(spark, found, "ratings", str(cache)), expected)
