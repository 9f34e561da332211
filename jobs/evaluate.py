"""Evaluate our model against implicit ALS, EASE, most-popular, explicit ALS and logistic regression on test.

    .venv/bin/sparkrec-submit jobs/evaluate.py \
        --data data/demo/prepared --model data/demo/model --output data/demo/evaluation \
        [--config conf/evaluate.yaml] [--set k=10] [--set eval_users=all] [--set baselines=popular,als]
        [--force] [--verbose]

Reads prepare's train/, test/, movies/, vocab/ and the training job's
MODEL_DIR/model.keras; writes OUTPUT/report.md, OUTPUT/metrics.json and
OUTPUT/comparison.png. The output directory is replaced atomically, and only
when it is missing, empty or an earlier evaluate output (`--force` replaces
anything but an input or a directory holding one): a failed run leaves the
previous one untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparkrec.core import console, outputs
from sparkrec.core.config import add_config_arguments, load_config, parse_overrides
from sparkrec.core.errors import SparkrecError
from sparkrec.core.runinfo import StageTimer, get_logger
from sparkrec.core.session import start
from sparkrec.evaluate import stages
from sparkrec.evaluate.config import EvaluateConfig

DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / "conf" / "evaluate.yaml")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepare job output directory")
    parser.add_argument("--model", required=True, help="training job output directory (model.keras, vocab/)")
    outputs.add_arguments(parser, "output directory (local path or Hadoop URI)")
    console.add_argument(parser)
    add_config_arguments(parser, default_config=DEFAULT_CONFIG)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_config(EvaluateConfig, args.config, parse_overrides(args.overrides))
    console.quiet(args.verbose, tensorflow=True)
    log = get_logger("evaluate")
    spark = start("sparkrec-evaluate")
    timer = StageTimer(log)
    inputs = {"--data": args.data, "--model": args.model}
    with outputs.staged_output(spark, args.output, "evaluate", inputs, args.force) as staging:
        data, deep = stages.extract(spark, args.data, args.model, config, timer)
        evaluated = stages.transform(spark, data, deep, config, timer, f"{staging}/_checkpoints")
        paths = {"data": args.data, "model": args.model, "output": args.output}
        document = stages.document(spark, evaluated, data, config, paths, timer)
        stages.load(spark, document, staging)
    for name, verdict in document["model_minus_baseline"].items():
        log.info(
            "%s vs %s: accuracy %+.4f, ndcg@%d %+.4f",
            document["evaluated_model"],
            name,
            verdict["accuracy"],
            config.k,
            verdict[f"ndcg@{config.k}"],
        )
    for name, reason in document["skipped"].items():
        log.info("%s skipped: %s", name, reason)
    users = document["split"]["users_evaluated"]
    log.info("evaluated %s models on %s users -> %s", len(document["models"]), f"{users:,}", args.output)
    return document


if __name__ == "__main__":
    try:
        main()
    except SparkrecError as exc:
        sys.exit(f"evaluate: {exc}")
