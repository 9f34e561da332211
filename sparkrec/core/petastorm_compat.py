"""Petastorm 0.13.1 on a current pyarrow: the legacy pyarrow pieces it calls, written on pyarrow.fs.

petastorm 0.13.1 (its last release) was written against pyarrow's legacy dataset
API, which pyarrow 15 removed (`pyarrow.filesystem`, `pyarrow.localfs`,
`pyarrow.hdfs`, and the legacy `pyarrow.parquet.ParquetDataset` with its
`ParquetDatasetPiece`). This module supplies exactly the legacy names on the
paths this project uses: `materialize_dataset` writing the Unischema metadata,
`make_reader`, `make_batch_reader` and `get_schema_from_dataset_url`, on
`file://` and fsspec URLs. The legacy `ParquetDataset` is handed to petastorm's
modules only (their module-level `pq`), never to the rest of the process.

Every petastorm name is imported from here, so the shim is always in place first.
On a pyarrow that still has the legacy API (the legacy stack, pyarrow 14) nothing
is replaced.
"""

from __future__ import annotations

import posixpath
import sys
import types

import pyarrow
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkrec.core.errors import SparkrecError

LEGACY_PYARROW = hasattr(pq, "ParquetDatasetPiece")


class Unsupported(SparkrecError, NotImplementedError):
    """A petastorm path this module does not supply on a current pyarrow; the jobs report it in one line."""


class LegacyFileSystem:
    """The legacy `pyarrow.filesystem.FileSystem` calls petastorm makes, on a `pyarrow.fs` filesystem.

    Needed by petastorm.utils (`from pyarrow.filesystem import LocalFileSystem`, and
    `fs.open/exists/rm` on the dataset's filesystem in `add_to_dataset_metadata`) and
    by the readers (`dataset.fs.open(piece.path)`); removed in pyarrow 15.
    """

    def __init__(self, filesystem: pafs.FileSystem):
        self.filesystem = filesystem

    def open(self, path: str, mode: str = "rb"):
        if mode == "rb":
            return self.filesystem.open_input_file(path)
        if mode == "wb":
            return self.filesystem.open_output_stream(path)
        raise ValueError(f"petastorm_compat: file mode {mode!r} is not one petastorm uses")

    def exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type != pafs.FileType.NotFound

    def isdir(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type == pafs.FileType.Directory

    def rm(self, path: str) -> None:
        self.filesystem.delete_file(path)


class LocalFileSystem(LegacyFileSystem):
    """`pyarrow.filesystem.LocalFileSystem` / `pyarrow.localfs`: petastorm's filesystem for file:// URLs."""

    def __init__(self, filesystem: pafs.FileSystem | None = None):
        super().__init__(filesystem or pafs.LocalFileSystem())


def _legacy_filesystem(filesystem) -> LegacyFileSystem:
    """Whatever petastorm passes as `filesystem=`: our legacy wrapper, or an fsspec filesystem."""
    if filesystem is None:
        return LocalFileSystem()
    if isinstance(filesystem, LegacyFileSystem):
        return filesystem
    if isinstance(filesystem, pafs.FileSystem):
        return LegacyFileSystem(filesystem)
    # An fsspec filesystem (s3://, gs://, ... resolved by petastorm's fs_utils) has open/exists/rm.
    return LegacyFileSystem(pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)))


class ParquetDatasetPiece:
    """The legacy `pyarrow.parquet.ParquetDatasetPiece`: one file, or one row group of it.

    petastorm's dataset_metadata builds one per row group (`load_row_groups`) and its
    reader workers call `read(columns=..., partitions=...)`; removed in pyarrow 15.
    """

    def __init__(self, path, open_file_func=None, row_group=None, partition_keys=None):
        if partition_keys:
            raise Unsupported(f"petastorm_compat: partitioned datasets are not supported ({path})")
        self.path = path
        self.open_file_func = open_file_func or LocalFileSystem().open
        self.row_group = row_group
        self.partition_keys = []

    def _file(self) -> pq.ParquetFile:
        return pq.ParquetFile(self.open_file_func(self.path))

    def get_metadata(self) -> pq.FileMetaData:
        return self._file().metadata

    def read(self, columns=None, partitions=None):
        parquet = self._file()
        if columns is not None:
            # petastorm passes a set; read in the file's column order so results do not depend on hashing.
            wanted = set(columns)
            columns = [name for name in parquet.schema_arrow.names if name in wanted]
        if self.row_group is None:
            return parquet.read(columns=columns)
        return parquet.read_row_group(self.row_group, columns=columns)


class ParquetDataset:
    """The legacy `pyarrow.parquet.ParquetDataset` as petastorm reads it (removed in pyarrow 15).

    petastorm uses `paths`, `fs`, `pieces` (one per data file, by path), `partitions`
    (None: unpartitioned), `metadata`/`metadata_path` (`_metadata`, when present) and
    `common_metadata` (`_common_metadata`, where materialize_dataset puts the Unischema).
    """

    def __init__(self, path_or_paths, filesystem=None, validate_schema=True, metadata_nthreads=1, filters=None):
        if filters is not None:
            raise Unsupported("petastorm_compat: row filters on a Petastorm dataset are not supported")
        self.fs = _legacy_filesystem(filesystem)
        self.paths = path_or_paths
        self.partitions = None
        if isinstance(path_or_paths, str) and self.fs.isdir(path_or_paths):
            root = path_or_paths.rstrip("/")
            files = self.fs.filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
            data_files = sorted(f.path for f in files if f.type == pafs.FileType.File and _is_data_file(root, f.path))
            self.metadata_path = self._summary(root, "_metadata")
            self.common_metadata_path = self._summary(root, "_common_metadata")
        else:
            data_files = [path_or_paths] if isinstance(path_or_paths, str) else list(path_or_paths)
            self.metadata_path = self.common_metadata_path = None
        self.pieces = [ParquetDatasetPiece(path, open_file_func=self.fs.open) for path in data_files]
        self.metadata = self._read_metadata(self.metadata_path)
        self.common_metadata = self._read_metadata(self.common_metadata_path)

    def _summary(self, root: str, name: str) -> str | None:
        path = f"{root}/{name}"
        return path if self.fs.exists(path) else None

    def _read_metadata(self, path: str | None) -> pq.FileMetaData | None:
        if path is None:
            return None
        with self.fs.open(path) as handle:
            return pq.read_metadata(handle)


def _is_data_file(root: str, path: str) -> bool:
    """The legacy dataset's rule: skip summary files and anything under a name starting with '_' or '.'."""
    parts = posixpath.relpath(path, root).split("/")
    if any(part.startswith(("_", ".")) for part in parts):
        return False
    if len(parts) > 1 and any("=" in part for part in parts[:-1]):
        raise Unsupported(f"petastorm_compat: partitioned datasets are not supported ({path})")
    return not path.endswith(".crc")


def _hdfs_connect(*args, **kwargs):
    raise Unsupported(
        "petastorm_compat: hdfs:// through petastorm's libhdfs connector needs pyarrow's legacy "
        "pyarrow.hdfs (removed in pyarrow 15); use the legacy stack (constraints-legacy.txt)"
    )


class HadoopFileSystem(LegacyFileSystem):
    """`pyarrow.hdfs.HadoopFileSystem`: imported by petastorm.hdfs.namenode at import time."""

    def __init__(self, *args, **kwargs):
        _hdfs_connect()


def _install() -> None:
    filesystem_module = types.ModuleType("pyarrow.filesystem", "sparkrec.core.petastorm_compat's legacy filesystem")
    filesystem_module.FileSystem = LegacyFileSystem
    filesystem_module.LocalFileSystem = LocalFileSystem
    hdfs_module = types.ModuleType("pyarrow.hdfs", "sparkrec.core.petastorm_compat: refuses hdfs, see _hdfs_connect")
    hdfs_module.HadoopFileSystem = HadoopFileSystem
    hdfs_module.connect = _hdfs_connect
    sys.modules["pyarrow.filesystem"] = filesystem_module
    sys.modules["pyarrow.hdfs"] = hdfs_module
    pyarrow.filesystem = filesystem_module
    pyarrow.hdfs = hdfs_module
    pyarrow.localfs = LocalFileSystem()
    pyarrow.LocalFileSystem = LocalFileSystem


def _legacy_parquet() -> types.ModuleType:
    """pyarrow.parquet as petastorm's modules see it: the current module plus the legacy dataset."""
    legacy = types.ModuleType("pyarrow.parquet", "pyarrow.parquet with sparkrec.core.petastorm_compat's legacy dataset")
    legacy.__dict__.update({k: v for k, v in vars(pq).items() if not k.startswith("__")})
    legacy.ParquetDataset = ParquetDataset
    legacy.ParquetDatasetPiece = ParquetDatasetPiece
    return legacy


if not LEGACY_PYARROW:
    _install()

from petastorm import make_batch_reader, make_reader  # noqa: E402
from petastorm.codecs import ScalarCodec  # noqa: E402
from petastorm.etl import dataset_metadata  # noqa: E402
from petastorm.etl.dataset_metadata import get_schema_from_dataset_url  # noqa: E402
from petastorm.unischema import Unischema, UnischemaField  # noqa: E402

if not LEGACY_PYARROW:
    import petastorm.arrow_reader_worker
    import petastorm.etl.rowgroup_indexing
    import petastorm.py_dict_reader_worker
    import petastorm.reader

    _PARQUET = _legacy_parquet()
    for _module in (
        petastorm.arrow_reader_worker,
        petastorm.py_dict_reader_worker,
        petastorm.reader,
        petastorm.etl.rowgroup_indexing,
        dataset_metadata,
    ):
        _module.pq = _PARQUET


def materialize_dataset(spark, dataset_url: str, schema, row_group_size_mb: int):
    """petastorm's `materialize_dataset`, with a filesystem factory Spark's Python workers can rebuild.

    petastorm's own factory for file:// is `lambda: pyarrow.localfs`, pickled to the
    workers that count row groups, where no shim has been installed; `LocalFileSystem`
    pickles by reference to this module, whose import installs it there too.
    """
    factory = None if LEGACY_PYARROW or not dataset_url.startswith("file:") else LocalFileSystem
    return dataset_metadata.materialize_dataset(
        spark, dataset_url, schema, row_group_size_mb, filesystem_factory=factory
    )


__all__ = [
    "LEGACY_PYARROW",
    "ScalarCodec",
    "Unischema",
    "UnischemaField",
    "get_schema_from_dataset_url",
    "make_batch_reader",
    "make_reader",
    "materialize_dataset",
]
