"""The one place a SparkSession is built."""

from __future__ import annotations

from pyspark.sql import SparkSession


def start(app_name: str) -> SparkSession:
    """Master, memory and parallelism come from spark-submit (see conf/spark/);
    the session time zone is pinned because Kaggle timestamps are parsed as UTC."""
    return SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC").getOrCreate()


def describe(spark: SparkSession) -> dict:
    """The session facts every job manifest records beside its results."""
    return {
        "master": spark.sparkContext.master,
        "default_parallelism": spark.sparkContext.defaultParallelism,
        "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions")),
    }
