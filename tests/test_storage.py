"""sparkrec.core.storage through its public functions, on a temporary directory, each operation
held to the same results on both backends: the OS (given a plain path, and a file:// URL)
and Hadoop's FileSystem (given a file:// URL)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sparkrec.core import storage


@dataclass
class Backend:
    name: str
    spark: object  # the SparkSession for Hadoop; None for the OS, as jobs without Spark pass
    root: Path  # the test's directory, as the OS names it

    def path(self, *parts: str) -> str:
        """The name this backend is given for a file under root."""
        local = os.path.join(self.root, *parts)
        return local if self.name == "os" else "file://" + local


def hadoop(spark, monkeypatch) -> None:
    # storage sends every file: URL to the OS; routing it to Hadoop's FileSystem instead holds
    # the code that serves hdfs: and s3a: URIs to the same results, on files a test can inspect.
    monkeypatch.setattr(storage, "_on", lambda session, path: storage._Hadoop(spark))


@pytest.fixture(params=["os", "os-url", "hadoop"])
def backend(request, tmp_path, monkeypatch) -> Backend:
    # Resolved: Hadoop never resolves symbolic links, the OS backend's canonical() does.
    root = Path(os.path.realpath(tmp_path))
    if request.param == "hadoop":
        spark = request.getfixturevalue("spark")
        hadoop(spark, monkeypatch)
        return Backend("hadoop", spark, root)
    return Backend(request.param, None, root)


# --- names: no filesystem involved ---


@pytest.mark.parametrize(
    "path, qualified",
    [
        ("/data/ml", "file:///data/ml"),
        ("file:///data/ml", "file:///data/ml"),
        ("file:/data/ml", "file:/data/ml"),
        ("hdfs://namenode:8020/data/ml", "hdfs://namenode:8020/data/ml"),
        ("s3a://bucket/data", "s3a://bucket/data"),
    ],
)
def test_qualify(path, qualified):
    assert storage.qualify(path) == qualified


def test_qualify_makes_a_relative_path_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.qualify("data/ml") == f"file://{tmp_path}/data/ml"


@pytest.mark.parametrize(
    "path, local, os_path",
    [
        ("/data/ml", True, "/data/ml"),
        ("data/ml", True, "data/ml"),
        ("file:///data/ml", True, "/data/ml"),
        ("file:/data/ml", True, "/data/ml"),
        ("hdfs://namenode:8020/data/ml", False, None),
        ("s3a://bucket/data", False, None),
    ],
)
def test_is_local_and_local_path(path, local, os_path):
    assert storage.is_local(path) is local
    if local:
        assert storage.local_path(path) == os_path


def test_a_hadoop_uri_without_a_session_fails_naming_it():
    with pytest.raises(ValueError) as caught:
        storage.exists(None, "hdfs://namenode:8020/data/ml")
    assert str(caught.value) == (
        "hdfs://namenode:8020/data/ml: a Hadoop URI needs a SparkSession (this job reads local paths only)"
    )


# --- every operation, on each backend ---


def test_exists_and_is_dir(backend):
    (backend.root / "dir").mkdir()
    (backend.root / "file").write_text("x")
    spark, path = backend.spark, backend.path
    assert [storage.exists(spark, path(name)) for name in ("dir", "file", "missing")] == [True, True, False]
    assert [storage.is_dir(spark, path(name)) for name in ("dir", "file", "missing")] == [True, False, False]


def test_children_are_the_sorted_names_hidden_ones_included(backend):
    for name in ("b", "a", ".hidden", "B"):
        (backend.root / name).write_text("x")
    (backend.root / "sub").mkdir()
    (backend.root / "sub" / "deeper").write_text("x")
    assert storage.children(backend.spark, backend.path()) == [".hidden", "B", "a", "b", "sub"]
    assert storage.children(backend.spark, backend.path("sub")) == ["deeper"]


def test_delete_a_file_a_tree_and_nothing(backend):
    (backend.root / "file").write_text("x")
    (backend.root / "tree" / "sub").mkdir(parents=True)
    (backend.root / "tree" / "sub" / "leaf").write_text("x")
    for name in ("file", "tree", "missing"):
        storage.delete(backend.spark, backend.path(name))
    assert list(backend.root.iterdir()) == []


def test_delete_removes_a_link_never_what_it_points_to(backend):
    (backend.root / "target").mkdir()
    (backend.root / "target" / "kept").write_text("x")
    (backend.root / "link").symlink_to(backend.root / "target")
    storage.delete(backend.spark, backend.path("link"))
    assert sorted(p.name for p in backend.root.iterdir()) == ["target"]
    assert (backend.root / "target" / "kept").read_text() == "x"


def test_rename_moves_a_directory(backend):
    (backend.root / "staging").mkdir()
    (backend.root / "staging" / "part-0").write_text("rows")
    storage.rename(backend.spark, backend.path("staging"), backend.path("final"))
    assert sorted(p.name for p in backend.root.iterdir()) == ["final"]
    assert (backend.root / "final" / "part-0").read_text() == "rows"


@pytest.mark.parametrize("target_is", ["directory", "file"])
def test_rename_onto_an_existing_target_fails_and_moves_nothing(backend, target_is):
    (backend.root / "staging").mkdir()
    (backend.root / "staging" / "part-0").write_text("new")
    if target_is == "directory":
        (backend.root / "final").mkdir()
        (backend.root / "final" / "part-0").write_text("old")
    else:
        (backend.root / "final").write_text("old")
    with pytest.raises(OSError, match="could not rename"):
        storage.rename(backend.spark, backend.path("staging"), backend.path("final"))
    # Hadoop would have moved staging *into* the directory: final/staging.
    assert (backend.root / "staging" / "part-0").read_text() == "new"
    old = backend.root / "final" / "part-0" if target_is == "directory" else backend.root / "final"
    assert old.read_text() == "old"
    if target_is == "directory":
        assert sorted(p.name for p in (backend.root / "final").iterdir()) == ["part-0"]


def test_mkdirs_makes_parents_and_may_be_repeated(backend):
    storage.mkdirs(backend.spark, backend.path("a", "b", "c"))
    storage.mkdirs(backend.spark, backend.path("a", "b", "c"))
    assert (backend.root / "a" / "b" / "c").is_dir()


def test_file_size_counts_bytes(backend):
    (backend.root / "file").write_text("café\n", encoding="utf-8")
    assert storage.file_size(backend.spark, backend.path("file")) == 6


@pytest.mark.parametrize(
    "content, line",
    [
        (b"userId,movieId\r\n1,2\r\n", "userId,movieId"),
        (b"userId,movieId\n1,2\n", "userId,movieId"),
        (b"\xef\xbb\xbfuserId,movieId\n", "userId,movieId"),  # a byte-order mark is no part of the header
        (b"only line", "only line"),
        (b"", ""),
        (b"caf\xe9,title\n", "caf\ufffd,title"),  # not UTF-8: replaced, for the header check to report
    ],
)
def test_read_first_line(backend, content, line):
    (backend.root / "file.csv").write_bytes(content)
    assert storage.read_first_line(backend.spark, backend.path("file.csv")) == line


def test_read_text_reads_utf_8(backend):
    (backend.root / "manifest.json").write_bytes('{"title": "Misérables"}\n'.encode())
    assert storage.read_text(backend.spark, backend.path("manifest.json")) == '{"title": "Misérables"}\n'


def test_read_text_returns_line_ends_as_written(backend):
    (backend.root / "file").write_bytes(b"a\r\nb\r")
    assert storage.read_text(backend.spark, backend.path("file")) == "a\r\nb\r"


def test_read_text_of_broken_utf_8_fails(backend):
    (backend.root / "file").write_bytes(b"caf\xe9")
    with pytest.raises(UnicodeDecodeError):
        storage.read_text(backend.spark, backend.path("file"))


@pytest.mark.parametrize("operation", [storage.read_text, storage.modified_unix, storage.file_size])
def test_a_missing_file_raises_file_not_found(backend, operation):
    with pytest.raises(FileNotFoundError):
        operation(backend.spark, backend.path("missing"))


def test_write_text_makes_parents_and_overwrites(backend):
    storage.write_text(backend.spark, backend.path("new", "dir", "manifest.json"), "first")
    storage.write_text(backend.spark, backend.path("new", "dir", "manifest.json"), "Misérables\n")
    assert (backend.root / "new" / "dir" / "manifest.json").read_bytes() == "Misérables\n".encode()


def test_create_exclusive_creates_once(backend):
    lock = backend.path("_LOCK")
    assert storage.create_exclusive(backend.spark, lock, "first run") is True
    assert storage.create_exclusive(backend.spark, lock, "second run") is False
    assert (backend.root / "_LOCK").read_text() == "first run"


def test_create_exclusive_makes_parents_as_other_writes_do(backend):
    assert storage.create_exclusive(backend.spark, backend.path("new", "dir", "_LOCK"), "run") is True
    assert (backend.root / "new" / "dir" / "_LOCK").read_text() == "run"


def test_touch_sets_the_modification_time_to_now(backend):
    (backend.root / "lock").write_text("x")
    os.utime(backend.root / "lock", (1_000_000_000, 1_000_000_000))
    assert storage.modified_unix(backend.spark, backend.path("lock")) == 1_000_000_000.0
    before = time.time()
    storage.touch(backend.spark, backend.path("lock"))
    after = time.time()
    # The filesystem's clock is coarser than time.time() (kernel ticks; Hadoop's milliseconds).
    assert before - 0.1 <= storage.modified_unix(backend.spark, backend.path("lock")) <= after + 0.1


def test_copy_from_local_makes_parents_and_overwrites(backend, tmp_path_factory):
    source = tmp_path_factory.mktemp("local") / "model.keras"
    source.write_bytes(b"\x00first")
    storage.copy_from_local(backend.spark, str(source), backend.path("out", "model", "model.keras"))
    source.write_bytes(b"\x00second\xff")
    storage.copy_from_local(backend.spark, str(source), backend.path("out", "model", "model.keras"))
    assert (backend.root / "out" / "model" / "model.keras").read_bytes() == b"\x00second\xff"


def test_canonical_gives_one_name_to_every_spelling_of_a_directory(backend):
    (backend.root / "out" / "sub").mkdir(parents=True)
    spellings = [
        backend.path("out"),
        backend.path("out") + "/",
        backend.path("out", "sub", ".."),
        backend.path("out", ".", "sub", "..") + "/",
    ]
    expected = f"file:{backend.root}/out" if backend.name == "hadoop" else f"{backend.root}/out"
    assert [storage.canonical(backend.spark, name) for name in spellings] == [expected] * 4


def test_canonical_resolves_a_local_link(tmp_path):
    root = Path(os.path.realpath(tmp_path))
    (root / "real").mkdir()
    (root / "alias").symlink_to(root / "real")
    assert storage.canonical(None, str(root / "alias")) == str(root / "real")
    assert storage.canonical(None, "file://" + str(root / "alias") + "/") == str(root / "real")


def test_canonical_of_the_root_is_the_root():
    assert storage.canonical(None, "/") == "/"
