"""Filesystem edges: local paths through the OS, every other URI through Hadoop's FileSystem.

Local paths and `file:` URLs go to the OS directly, so that exclusive creation
(the output lock) is atomic there and jobs without Spark (training, the
generator) use the same calls; `hdfs:`, `s3a:` and other URIs go through
Hadoop's FileSystem of the running SparkSession. Every function takes the
session first and accepts None for it on local paths.
"""

from __future__ import annotations

import os
import shutil

from pyspark.sql import SparkSession

Spark = SparkSession | None


def qualify(path: str) -> str:
    """A local path becomes an absolute `file://` URL; URIs pass through."""
    if "://" in path or path.startswith("file:"):
        return path
    return "file://" + os.path.abspath(path)


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def local_path(path: str) -> str:
    """The OS path of a local path or `file:` URL."""
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("file:"):
        return path[len("file:") :]
    return path


class _Local:
    """The OS filesystem; never follows a symbolic link when deleting; writes create parent
    directories, as Hadoop's do."""

    def exists(self, path: str) -> bool:
        return os.path.lexists(local_path(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(local_path(path))

    def children(self, path: str) -> list[str]:
        return sorted(os.listdir(local_path(path)))

    def delete(self, path: str) -> None:
        target = local_path(path)
        if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
            os.unlink(target)
        elif os.path.isdir(target):
            shutil.rmtree(target)

    def rename(self, source: str, target: str) -> None:
        if os.path.lexists(local_path(target)):
            raise OSError(f"could not rename {source} to {target}: the target exists")
        os.rename(local_path(source), local_path(target))

    def mkdirs(self, path: str) -> None:
        os.makedirs(local_path(path), exist_ok=True)

    def file_size(self, path: str) -> int:
        return os.path.getsize(local_path(path))

    def read_first_line(self, path: str) -> str:
        with open(local_path(path), encoding="utf-8", errors="replace", newline="") as handle:
            return handle.readline().rstrip("\r\n")

    def read_text(self, path: str) -> str:
        # newline="": line ends as written, as Hadoop's backend returns them.
        with open(local_path(path), encoding="utf-8", newline="") as handle:
            return handle.read()

    def write_text(self, path: str, text: str) -> None:
        os.makedirs(os.path.dirname(local_path(path)) or ".", exist_ok=True)
        with open(local_path(path), "w", encoding="utf-8") as handle:
            handle.write(text)

    def create_exclusive(self, path: str, text: str) -> bool:
        os.makedirs(os.path.dirname(local_path(path)) or ".", exist_ok=True)
        try:
            descriptor = os.open(local_path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        return True

    def touch(self, path: str) -> None:
        os.utime(local_path(path))

    def modified_unix(self, path: str) -> float:
        return os.stat(local_path(path)).st_mtime

    def copy_from_local(self, local: str, target: str) -> None:
        os.makedirs(os.path.dirname(local_path(target)) or ".", exist_ok=True)
        shutil.copyfile(local, local_path(target))

    def canonical(self, path: str) -> str:
        """Absolute, normalized, symbolic links resolved: two names of one directory compare equal."""
        return os.path.realpath(local_path(path))


class _Hadoop:
    """A Hadoop FileSystem (HDFS, S3A, ...) through the session's JVM."""

    def __init__(self, spark: SparkSession):
        self.spark = spark
        self.jvm = spark._jvm

    def _fs(self, path: str):
        hadoop_path = self.jvm.org.apache.hadoop.fs.Path(path)
        return hadoop_path.getFileSystem(self.spark._jsc.hadoopConfiguration()), hadoop_path

    def _status(self, path: str):
        """The file's FileStatus; FileNotFoundError, as the OS backend raises, when there is none."""
        fs, p = self._fs(path)
        if not fs.exists(p):
            raise FileNotFoundError(f"no such file: {path}")
        return fs.getFileStatus(p)

    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def is_dir(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p)) and bool(fs.getFileStatus(p).isDirectory())

    def children(self, path: str) -> list[str]:
        fs, p = self._fs(path)
        return sorted(str(status.getPath().getName()) for status in fs.listStatus(p))

    def delete(self, path: str) -> None:
        fs, p = self._fs(path)
        if fs.exists(p):
            fs.delete(p, True)

    def rename(self, source: str, target: str) -> None:
        # Hadoop moves a source *into* an existing target directory: never let it.
        fs, src = self._fs(source)
        _, dst = self._fs(target)
        if fs.exists(dst) or not fs.rename(src, dst):
            raise OSError(f"could not rename {source} to {target}")

    def mkdirs(self, path: str) -> None:
        fs, p = self._fs(path)
        fs.mkdirs(p)

    def file_size(self, path: str) -> int:
        return int(self._status(path).getLen())

    def read_first_line(self, path: str) -> str:
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            reader = self.jvm.java.io.BufferedReader(self.jvm.java.io.InputStreamReader(stream, "UTF-8"))
            return reader.readLine() or ""
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        fs, p = self._fs(path)
        self._status(path)
        stream = fs.open(p)
        try:
            data = self.jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
        return bytes(data).decode("utf-8")

    def _write(self, path: str, text: str, overwrite: bool) -> None:
        fs, p = self._fs(path)
        stream = fs.create(p, overwrite)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def write_text(self, path: str, text: str) -> None:
        self._write(path, text, True)

    def create_exclusive(self, path: str, text: str) -> bool:
        """Atomic on HDFS (the NameNode refuses a second create); best effort on object stores."""
        if self.exists(path):
            return False
        try:
            self._write(path, text, False)
        except Exception as exc:  # py4j wraps FileAlreadyExistsException
            if "FileAlreadyExists" in str(exc) or self.exists(path):
                return False
            raise
        return True

    def touch(self, path: str) -> None:
        fs, p = self._fs(path)
        fs.setTimes(p, self.jvm.java.lang.System.currentTimeMillis(), -1)

    def modified_unix(self, path: str) -> float:
        return self._status(path).getModificationTime() / 1000.0

    def copy_from_local(self, local: str, target: str) -> None:
        fs, dst = self._fs(target)
        fs.copyFromLocalFile(False, True, self.jvm.org.apache.hadoop.fs.Path(qualify(local)), dst)

    def canonical(self, path: str) -> str:
        """Scheme, authority and absolute normalized path, as the filesystem resolves a relative one."""
        fs, p = self._fs(path)
        return str(fs.makeQualified(p).toString()).rstrip("/")


_LOCAL = _Local()


def _on(spark: Spark, path: str):
    if is_local(path):
        return _LOCAL
    if spark is None:
        raise ValueError(f"{path}: a Hadoop URI needs a SparkSession (this job reads local paths only)")
    return _Hadoop(spark)


def exists(spark: Spark, path: str) -> bool:
    return _on(spark, path).exists(path)


def is_dir(spark: Spark, path: str) -> bool:
    return _on(spark, path).is_dir(path)


def children(spark: Spark, path: str) -> list[str]:
    """Names of a directory's entries, sorted."""
    return _on(spark, path).children(path)


def delete(spark: Spark, path: str) -> None:
    """Remove a file or a directory tree (a symbolic link itself, never what it points to)."""
    _on(spark, path).delete(path)


def rename(spark: Spark, source: str, target: str) -> None:
    """Move `source` to `target`, which must not exist."""
    _on(spark, source).rename(source, target)


def mkdirs(spark: Spark, path: str) -> None:
    _on(spark, path).mkdirs(path)


def file_size(spark: Spark, path: str) -> int:
    return _on(spark, path).file_size(path)


def read_first_line(spark: Spark, path: str) -> str:
    """The header line of a text file, without reading the rest."""
    return _on(spark, path).read_first_line(path).lstrip("\ufeff")


def read_text(spark: Spark, path: str) -> str:
    return _on(spark, path).read_text(path)


def write_text(spark: Spark, path: str, text: str) -> None:
    _on(spark, path).write_text(path, text)


def create_exclusive(spark: Spark, path: str, text: str) -> bool:
    """Create `path` holding `text` unless something is there already; True when this call created it."""
    return _on(spark, path).create_exclusive(path, text)


def touch(spark: Spark, path: str) -> None:
    """Set a file's modification time to now."""
    _on(spark, path).touch(path)


def modified_unix(spark: Spark, path: str) -> float:
    return _on(spark, path).modified_unix(path)


def copy_from_local(spark: Spark, local: str, target: str) -> None:
    _on(spark, target).copy_from_local(local, target)


def canonical(spark: Spark, path: str) -> str:
    """The one name of a path that comparisons use (qualified, normalized; local links resolved)."""
    return _on(spark, path).canonical(path.rstrip("/") or "/")
