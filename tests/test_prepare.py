"""The prepare job end to end on real MovieLens data (ml-latest-small) and on damaged copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparkrec.core import columns as C
from sparkrec.core.config import ConfigError
from sparkrec.prepare.movielens import InputError
from sparkrec.prepare.validation import TooManyBadRows

from helpers import run_job, tree_digest


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def read_split(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas().sort_values([C.USER_ID, C.MOVIE_ID]).reset_index(drop=True)


def test_manifest_counts_on_ml_latest_small(prepared_small):
    m = manifest(prepared_small)
    assert m["rows"] == {
        "ratings_read": 100836,
        "ratings_valid": 100836,
        "movies_read": 9742,
        "movies_valid": 9742,
        "tags_read": 3683,
        "tags_valid": 3683,
        "links_read": 9742,
        "links_valid": 9742,
        "quarantine": 0,
        "interactions": 100836,
        "sampled_users": 610,
        "train": 90828,
        "test": 10008,
        "movies_table": 9742,
    }
    assert m["quarantine"] == {"ratings.csv": {}, "movies.csv": {}, "tags.csv": {}, "links.csv": {}}
    assert m["vocab_sizes"] == {"user": 611, "movie": 9725, "genre": 21, "year": 107, "tag": 1052}
    assert m["input"]["layout"] == "grouplens"
    assert m["input"]["files"]["ratings"]["bytes"] == 2483723
    assert m["config"]["sample_users"] == "all" and m["config"]["seed"] == 42
    assert set(m["timings_s"]) >= {"extract", "validate", "sample", "interactions", "train", "test"}
    assert m["figures"] == ["genre.png", "release_year.png", "rating.png"]
    for name in m["figures"]:
        assert (prepared_small / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_and_test_together_equal_the_sample(prepared_small, ml_small):
    train, test = read_split(prepared_small / "train"), read_split(prepared_small / "test")
    together = pd.concat([train, test]).sort_values([C.USER_ID, C.MOVIE_ID]).reset_index(drop=True)
    raw = pd.read_csv(ml_small / "ratings.csv").sort_values([C.USER_ID, C.MOVIE_ID]).reset_index(drop=True)
    assert len(together) == len(raw) == 100836
    assert (together[C.USER_ID].values == raw[C.USER_ID].values).all()
    assert (together[C.MOVIE_ID].values == raw[C.MOVIE_ID].values).all()
    assert (together[C.RATING].values == raw[C.RATING].astype("float32").values).all()
    assert (together[C.LIKE].values == (raw[C.RATING] >= 3.5).astype(int).values).all()
    assert not set(zip(train[C.USER_ID], train[C.MOVIE_ID])) & set(zip(test[C.USER_ID], test[C.MOVIE_ID]))
    assert together[list(C.SPLIT_SCHEMA.fieldNames())].notna().all().all()
    assert together[C.USER_IDX].min() == 1 and together[C.USER_IDX].max() == 610


def test_vocabularies_are_dense_and_consistent(prepared_small):
    users = pq.read_table(prepared_small / "vocab" / "user").to_pandas()
    assert sorted(users[C.USER_IDX]) == list(range(1, 611))
    assert list(users.sort_values(C.USER_IDX)[C.USER_ID]) == sorted(users[C.USER_ID])
    genres = pq.read_table(prepared_small / "vocab" / "genre").to_pandas().sort_values("genre_idx")
    assert list(genres["genre"]) == sorted(C.GENRE_LIST)
    movies = pq.read_table(prepared_small / "movies").to_pandas()
    assert len(movies) == 9742 and (movies[C.MOVIE_IDX] == 0).sum() == 9742 - 9724
    toy = movies[movies[C.MOVIE_ID] == 1].iloc[0]
    assert toy[C.RELEASE_YEAR] == 1995 and toy[C.MOVIE_IDX] == 1
    # sorted vocabulary, 0 reserved: "(no genres listed)" 1, Action 2, Adventure 3, Animation 4
    assert toy[C.GENRE1_IDX] == 3 and toy[C.GENRE2_IDX] == 4


def test_petastorm_readers_read_the_splits(prepared_small):
    """Every petastorm path the project uses, on whichever stack is installed, row for row."""
    from sparkrec.core.petastorm_compat import get_schema_from_dataset_url, make_batch_reader, make_reader
    from sparkrec.prepare.petastorm_io import SPLIT_UNISCHEMA

    url = f"file://{prepared_small}/test"
    names = C.SPLIT_SCHEMA.fieldNames()
    expected = sorted(zip(*pq.read_table(f"{prepared_small}/test", columns=names).to_pydict().values()))
    assert len(expected) == 10008
    assert list(get_schema_from_dataset_url(url).fields) == list(SPLIT_UNISCHEMA.fields)
    with make_reader(url, num_epochs=1, workers_count=1, shuffle_row_groups=False) as reader:
        rows = sorted(tuple(getattr(row, name).item() for name in names) for row in reader)
    assert rows == expected
    with make_batch_reader(url, num_epochs=1, workers_count=1, shuffle_row_groups=False) as reader:
        batches = list(reader)
    assert batches[0].genre_drama.dtype.name == "int8"
    columns = [np.concatenate([getattr(b, name) for b in batches]) for name in names]
    assert sorted(zip(*(column.tolist() for column in columns))) == expected


BAD_RATINGS = [
    "1,abc,4.0,964982703",  # movieId not an integer
    "1,2",  # too few fields
    "1,2,7.0,964982703",  # out of range
    "1,5,3.3,964982703",  # not a half star
    "1,999999,4.0,964982703",  # no such movie
    "1,1,2.0,964982799",  # second rating of (1, 1), later than the original
    "1,1,4.0,964982703",  # exact copy of the original (1, 1) row
]


def damage(directory: Path) -> None:
    with open(directory / "ratings.csv", "a") as handle:
        handle.write("\n".join(BAD_RATINGS) + "\n")
    with open(directory / "movies.csv", "a") as handle:
        handle.write('1,"Toy Story again (1995)",Comedy\n')


@pytest.mark.slow
def test_bad_rows_are_quarantined_with_reasons(prepare_job, ml_small_copy, tmp_path):
    damage(ml_small_copy)
    output = tmp_path / "out"
    prepare_job.main(["--input", str(ml_small_copy), "--output", str(output), "--set", "sample_users=20"])
    m = manifest(output)
    assert m["quarantine"]["ratings.csv"] == {
        "duplicate_user_movie_rating": 2,
        "malformed_row": 2,
        "rating_off_half_star_grid": 1,
        "rating_out_of_range": 1,
        "unknown_movie": 1,
    }
    assert m["quarantine"]["movies.csv"] == {"duplicate_movie_id": 1}
    assert m["rows"]["ratings_valid"] == 100836 and m["rows"]["quarantine"] == 8
    quarantine = pq.read_table(output / "quarantine").to_pandas()
    got = sorted(zip(quarantine[C.SOURCE], quarantine[C.REASON], quarantine[C.RECORD]))
    assert got == sorted(
        [
            ("ratings.csv", "malformed_row", "1,abc,4.0,964982703"),
            ("ratings.csv", "malformed_row", "1,2"),
            ("ratings.csv", "rating_out_of_range", "1,2,7.0,964982703"),
            ("ratings.csv", "rating_off_half_star_grid", "1,5,3.3,964982703"),
            ("ratings.csv", "unknown_movie", "1,999999,4.0,964982703"),
            ("ratings.csv", "duplicate_user_movie_rating", "1,1,2.0,964982799"),
            ("ratings.csv", "duplicate_user_movie_rating", "1,1,4.0,964982703"),
            ("movies.csv", "duplicate_movie_id", "1,Toy Story again (1995),Comedy"),
        ]
    )


def test_too_many_bad_rows_fail_and_keep_the_previous_output(prepare_job, prepared_small, ml_small_copy):
    damage(ml_small_copy)
    before = (prepared_small / "manifest.json").read_bytes()
    with pytest.raises(TooManyBadRows, match=r"movies.csv: 1 of 9,743 rows rejected .* duplicate_movie_id"):
        prepare_job.main(
            ["--input", str(ml_small_copy), "--output", str(prepared_small), "--set", "max_bad_fraction=0.00001"]
        )
    assert (prepared_small / "manifest.json").read_bytes() == before
    assert len(pq.read_table(prepared_small / "train")) == 90828


def test_missing_required_file_is_named(prepare_job, ml_small_copy, tmp_path):
    (ml_small_copy / "movies.csv").unlink()
    with pytest.raises(InputError, match=r"movies.csv: required file missing"):
        prepare_job.main(["--input", str(ml_small_copy), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_missing_column_is_named(prepare_job, ml_small_copy, tmp_path):
    ratings = ml_small_copy / "ratings.csv"
    lines = ratings.read_text().splitlines()
    ratings.write_text("\n".join(["userId,movieId,stars,timestamp", *lines[1:]]) + "\n")
    with pytest.raises(InputError, match=r"ratings.csv: missing column\(s\) rating"):
        prepare_job.main(["--input", str(ml_small_copy), "--output", str(tmp_path / "out")])


MOVIES_CSV = "movieId,title,genres\n1,Toy Story (1995),Animation|Children\n2,Heat (1995),Action|Crime\n"
RATINGS_HEADER = "userId,movieId,rating,timestamp\n"


@pytest.mark.parametrize(
    "movies, ratings, settings, message",
    [
        (MOVIES_CSV, RATINGS_HEADER, [], "{input}/ratings.csv: no data rows, only a header"),
        (
            "movieId,title,genres\n",
            RATINGS_HEADER + "1,1,4.0,1\n",
            [],
            "{input}/movies.csv: no data rows, only a header",
        ),
        (
            MOVIES_CSV,
            RATINGS_HEADER + "1,1,4.0,1\n2,2,3.0,2\n",
            ["split=temporal"],
            "{input}/ratings.csv: the train split of the 2 sampled users would be empty (split=temporal, "
            "test_fraction=0.1)",
        ),
        (
            MOVIES_CSV,
            RATINGS_HEADER + "1,1,4.0,1\n1,2,3.0,2\n",
            ["test_fraction=0.0001"],
            "{input}/ratings.csv: the test split of the 1 sampled users would be empty (split=random, "
            "test_fraction=0.0001)",
        ),
    ],
    ids=["ratings-header-only", "movies-header-only", "empty-train-split", "empty-test-split"],
)
def test_degenerate_input_fails_before_writing_anything(prepare_job, tmp_path, movies, ratings, settings, message):
    data = tmp_path / "ml"
    data.mkdir()
    (data / "movies.csv").write_text(movies)
    (data / "ratings.csv").write_text(ratings)
    before = tree_digest(tmp_path)
    overrides = [item for setting in settings for item in ("--set", setting)]
    with pytest.raises(InputError) as caught:
        prepare_job.main(["--input", str(data), "--output", str(tmp_path / "out"), *overrides])
    assert str(caught.value) == message.format(input=data)
    assert tree_digest(tmp_path) == before


def test_no_valid_rating_fails_after_writing_the_quarantine_for_inspection(prepare_job, tmp_path):
    data = tmp_path / "ml"
    data.mkdir()
    (data / "movies.csv").write_text(MOVIES_CSV)
    (data / "ratings.csv").write_text(RATINGS_HEADER + "1,7,4.0,1\n2,8,3.0,2\n")
    output = tmp_path / "out"
    with pytest.raises(InputError, match=rf"^{data}/ratings.csv: none of its 2 rows is valid \(see quarantine/\)$"):
        prepare_job.main(["--input", str(data), "--output", str(output), "--set", "max_bad_fraction=1"])
    assert not output.exists()
    quarantine = pq.read_table(tmp_path / "out.staging" / "quarantine").to_pandas()
    assert sorted(quarantine[C.REASON]) == ["unknown_movie", "unknown_movie"]


def test_unknown_setting_is_rejected(prepare_job, ml_small, tmp_path):
    with pytest.raises(ConfigError, match="unknown setting 'sample_user'"):
        prepare_job.main(["--input", str(ml_small), "--output", str(tmp_path / "o"), "--set", "sample_user=5"])


@pytest.mark.slow
def test_kaggle_layout_gives_the_same_sample(prepare_job, ml_small, tmp_path):
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    ratings = pd.read_csv(ml_small / "ratings.csv")
    ratings["timestamp"] = pd.to_datetime(ratings["timestamp"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    ratings.to_csv(kaggle / "rating.csv", index=False)
    (kaggle / "movie.csv").write_bytes((ml_small / "movies.csv").read_bytes())
    output = tmp_path / "out"
    prepare_job.main(["--input", str(kaggle), "--output", str(output), "--set", "sample_users=50"])
    m = manifest(output)
    assert m["input"]["layout"] == "kaggle"
    assert m["rows"]["ratings_valid"] == 100836 and m["rows"]["quarantine"] == 0
    train = read_split(output / "train")
    raw = pd.read_csv(ml_small / "ratings.csv").set_index([C.USER_ID, C.MOVIE_ID])
    assert (
        train.set_index([C.USER_ID, C.MOVIE_ID])[C.TIMESTAMP]
        == raw[C.TIMESTAMP].reindex(train.set_index([C.USER_ID, C.MOVIE_ID]).index)
    ).all()


@pytest.mark.slow
def test_same_sample_split_and_vocab_whatever_the_partitioning(spark, prepare_job, ml_small, tmp_path):
    """The second run also reads its CSVs from the raw cache the first one filled."""
    outputs = []
    cache = tmp_path / "raw-cache"
    for partitions in ("3", "11"):
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
        output = tmp_path / f"p{partitions}"
        prepare_job.main(
            [
                "--input",
                str(ml_small),
                "--output",
                str(output),
                "--set",
                "sample_users=100",
                "--set",
                "figures=false",
                "--set",
                f"raw_cache={cache}",
            ]
        )
        outputs.append(output)
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    assert sorted(p.name.split("-")[1] for p in cache.iterdir()) == ["links", "movies", "ratings", "tags"]
    first, second = outputs
    assert manifest(first)["sampled_user_ids_sha256"] == manifest(second)["sampled_user_ids_sha256"]
    assert manifest(first)["rows"]["sampled_users"] == 100
    for split in ("train", "test"):
        pd.testing.assert_frame_equal(read_split(first / split), read_split(second / split))
    for name in C.VOCABULARIES:
        a = pq.read_table(first / "vocab" / name).to_pandas()
        b = pq.read_table(second / "vocab" / name).to_pandas()
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_job_exits_nonzero_with_one_line_reason(ml_small_copy, tmp_path):
    (ml_small_copy / "ratings.csv").unlink()
    result = run_job("prepare", "--input", str(ml_small_copy), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"prepare: {ml_small_copy}/ratings.csv: required file missing (grouplens layout)"
