"""The one place a SparkSession is built."""

from __future__ import annotations

from pyspark.sql import SparkSession

from sparkrec.core import console


def start(app_name: str, settings: dict[str, str] | None = None) -> SparkSession:
    """Master, memory and parallelism come from spark-submit (see conf/spark/);
    the session time zone is pinned because Kaggle timestamps are parsed as UTC.
    `settings` are a job's own (distributed training's barrier timeouts).

    Our tables are up to 33 columns wide, more mid-plan: Spark's default of 25 fields would
    truncate their plans' descriptions, and warn that it did.
    """
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.debug.maxToStringFields", "100")
    )
    for key, value in {**console.spark_settings(), **(settings or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
