"""Prepare MovieLens for training: validate, join, sample users, split, write Petastorm datasets.

    .venv/bin/sparkrec-submit jobs/prepare.py \
        --input data/demo/raw --output data/demo/prepared \
        [--config conf/prepare.yaml] [--set sample_users=5000] [--set split=temporal] [--force] [--verbose]

Outputs are described in docs/data-contract.md. The output directory is
replaced atomically, and only when it is missing, empty or an earlier prepare
output (`--force` replaces anything but an input or a directory holding one):
a failed run leaves the previous one untouched.
"""

from __future__ import annotations

import argparse
import sys

from sparkrec.core import console, outputs, runinfo
from sparkrec.core.config import add_config_arguments, load_config, parse_overrides
from sparkrec.core.errors import SparkrecError
from sparkrec.core.runinfo import StageTimer, get_logger
from sparkrec.core.session import start
from sparkrec.prepare import stages
from sparkrec.prepare.config import PrepareConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--input",
        required=True,
        help="MovieLens directory (ML-100K, 1M, 10M, 20M, 25M, 32M, latest or Kaggle's 20M), recognised by its files",
    )
    outputs.add_arguments(parser, "output directory (local path or Hadoop URI)")
    console.add_argument(parser)
    add_config_arguments(parser, default_config=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_config(PrepareConfig, args.config, parse_overrides(args.overrides))
    console.quiet(args.verbose)
    log = get_logger("prepare")
    spark = start("sparkrec-prepare")
    timer = StageTimer(log)
    with outputs.staged_output(spark, args.output, "prepare", {"--input": args.input}, args.force) as staging:
        extracted = stages.extract(spark, args.input, config, timer)
        prepared = stages.transform(spark, extracted, config, timer)
        loaded = stages.load(spark, prepared, staging, config, timer)
        document = stages.manifest(spark, config, args.input, args.output, prepared, timer, loaded)
        runinfo.write_json(spark, f"{staging}/manifest.json", document, sort_keys=True)
    log.info(
        "prepared %s: %s users, %s train / %s test ratings, %s quarantined, %.1fs",
        args.output,
        f"{len(prepared.users):,}",
        f"{timer.rows['train']:,}",
        f"{timer.rows['test']:,}",
        f"{timer.rows['quarantine']:,}",
        sum(timer.seconds.values()),
    )
    return document


if __name__ == "__main__":
    try:
        main()
    except SparkrecError as exc:
        sys.exit(f"prepare: {exc}")
