"""The legacy pyarrow pieces sparkrec.core.petastorm_compat writes for petastorm, on literal files.

They are defined on either stack (installed only where pyarrow lacks them), so these
run on both; tests/test_prepare.py runs petastorm itself through them.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkrec.core import petastorm_compat as compat


@pytest.fixture()
def store(tmp_path):
    """A Spark-like Parquet store: two data files (two row groups in one), summaries and checksums."""
    pq.write_table(
        pa.table({"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"]}), tmp_path / "part-1.parquet", row_group_size=2
    )
    pq.write_table(pa.table({"a": [5], "b": ["v"]}), tmp_path / "part-0.parquet")
    pq.write_metadata(
        pa.schema([("a", pa.int64()), ("b", pa.string())], metadata={b"k": b"v"}), tmp_path / "_common_metadata"
    )
    for name in ("_SUCCESS", ".part-0.parquet.crc"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_dataset_lists_data_files_in_path_order_and_reads_the_summaries(store):
    dataset = compat.ParquetDataset(str(store), filesystem=compat.LocalFileSystem(), validate_schema=False)
    assert [p.path for p in dataset.pieces] == [f"{store}/part-0.parquet", f"{store}/part-1.parquet"]
    assert dataset.paths == str(store) and dataset.partitions is None
    assert dataset.common_metadata.metadata[b"k"] == b"v"
    assert dataset.metadata is None and dataset.metadata_path is None


def test_pieces_read_one_row_group_in_file_column_order(store):
    fs = compat.LocalFileSystem()
    piece = compat.ParquetDatasetPiece(f"{store}/part-1.parquet", open_file_func=fs.open, row_group=1)
    table = piece.read(columns={"b", "a"}, partitions=None)
    assert table.column_names == ["a", "b"]
    assert table.to_pydict() == {"a": [3, 4], "b": ["y", "z"]}
    assert piece.get_metadata().num_row_groups == 2
    whole = compat.ParquetDatasetPiece(f"{store}/part-1.parquet", open_file_func=fs.open)
    assert whole.read(columns=["b"]).to_pydict() == {"b": ["w", "x", "y", "z"]}


def test_filesystem_opens_writes_checks_and_removes(tmp_path):
    fs = compat.LocalFileSystem()
    path = str(tmp_path / "f")
    with fs.open(path, "wb") as handle:
        handle.write(b"abc")
    assert fs.exists(path) and not fs.isdir(path) and fs.isdir(str(tmp_path))
    with fs.open(path) as handle:
        assert handle.read() == b"abc"
    fs.rm(path)
    assert not fs.exists(path)
    with pytest.raises(ValueError, match="file mode 'ab'"):
        fs.open(path, "ab")


def test_a_dataset_given_as_files_has_one_piece_each(store):
    files = [f"{store}/part-1.parquet", f"{store}/part-0.parquet"]
    dataset = compat.ParquetDataset(files, filesystem=compat.LocalFileSystem())
    assert [p.path for p in dataset.pieces] == files and dataset.common_metadata is None


def test_what_the_shim_does_not_cover_fails_in_one_line(store):
    (store / "year=1999").mkdir()
    pq.write_table(pa.table({"a": [9]}), store / "year=1999" / "part-9.parquet")
    with pytest.raises(NotImplementedError, match="partitioned datasets are not supported"):
        compat.ParquetDataset(str(store))
    with pytest.raises(NotImplementedError, match="row filters"):
        compat.ParquetDataset(str(store), filters=[("a", "=", 1)])
    with pytest.raises(NotImplementedError, match="hdfs:// through petastorm's libhdfs connector"):
        compat.HadoopFileSystem("namenode", 8020)


def test_the_shim_is_installed_exactly_where_pyarrow_lacks_the_legacy_api():
    import pyarrow.filesystem
    from petastorm import reader

    if compat.LEGACY_PYARROW:
        assert reader.pq is pq and pyarrow.filesystem.LocalFileSystem is not compat.LocalFileSystem
    else:
        assert reader.pq.ParquetDataset is compat.ParquetDataset and pq.ParquetDataset is not compat.ParquetDataset
        assert pyarrow.filesystem.LocalFileSystem is compat.LocalFileSystem
