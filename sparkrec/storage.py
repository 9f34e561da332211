"""Filesystem edges through Hadoop's FileSystem, so `file:`, `hdfs:` and `s3a:` paths all work.

Outputs are built in a staging sibling and committed by rename: a job that
fails or is killed leaves the previous committed output as it was.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import SparkSession

STAGING_SUFFIX = ".staging"
PREVIOUS_SUFFIX = ".previous"


def _fs_path(spark: SparkSession, path: str):
    jvm = spark._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()), hadoop_path


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
        return path[len("file://"):]
    if path.startswith("file:"):
        return path[len("file:"):]
    return path


def exists(spark: SparkSession, path: str) -> bool:
    fs, p = _fs_path(spark, path)
    return bool(fs.exists(p))


def delete(spark: SparkSession, path: str) -> None:
    fs, p = _fs_path(spark, path)
    if fs.exists(p):
        fs.delete(p, True)


def rename(spark: SparkSession, source: str, target: str) -> None:
    fs, src = _fs_path(spark, source)
    _, dst = _fs_path(spark, target)
    if not fs.rename(src, dst):
        raise OSError(f"could not rename {source} to {target}")


def file_size(spark: SparkSession, path: str) -> int:
    fs, p = _fs_path(spark, path)
    return int(fs.getFileStatus(p).getLen())


def read_first_line(spark: SparkSession, path: str) -> str:
    """The header line of a text file, without reading the rest."""
    fs, p = _fs_path(spark, path)
    stream = fs.open(p)
    try:
        reader = spark._jvm.java.io.BufferedReader(spark._jvm.java.io.InputStreamReader(stream, "UTF-8"))
        line = reader.readLine()
    finally:
        stream.close()
    return (line or "").lstrip("\ufeff")


def write_text(spark: SparkSession, path: str, text: str) -> None:
    fs, p = _fs_path(spark, path)
    stream = fs.create(p, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str:
    fs, p = _fs_path(spark, path)
    stream = fs.open(p)
    try:
        data = spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def copy_from_local(spark: SparkSession, local: str, target: str) -> None:
    fs, dst = _fs_path(spark, target)
    fs.copyFromLocalFile(False, True, spark._jvm.org.apache.hadoop.fs.Path(qualify(local)), dst)


def recover(spark: SparkSession, output: str) -> None:
    """Finish or undo a commit that was interrupted between its two renames."""
    previous = output + PREVIOUS_SUFFIX
    if exists(spark, previous):
        if exists(spark, output):
            delete(spark, previous)
        else:
            rename(spark, previous, output)


@contextmanager
def staged_output(spark: SparkSession, output: str) -> Iterator[str]:
    """Yield a fresh staging path; on success, swap it into `output`.

    On any exception the staging directory is left for inspection (the next
    run clears it) and `output` is untouched. The swap is two renames; on HDFS
    and local disks each is atomic, and `recover` repairs a crash between them.
    On object stores (s3a) rename is a copy: the commit is not atomic there.
    """
    output = output.rstrip("/")
    recover(spark, output)
    staging = output + STAGING_SUFFIX
    delete(spark, staging)
    yield staging
    previous = output + PREVIOUS_SUFFIX
    if exists(spark, output):
        rename(spark, output, previous)
    rename(spark, staging, output)
    delete(spark, previous)
