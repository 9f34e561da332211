"""Score: each user's top-K unwatched catalogue movies, from a trained model, in Spark pandas UDFs.

    .venv/bin/sparkrec-submit --conf spark.executorEnv.OPENBLAS_NUM_THREADS=1 jobs/score.py \
        --data data/demo/prepared --model data/demo/model --output data/demo/scores \
        [--config conf/score.yaml] [--set users=sample|all] [--set top_k=10] [--set path=auto|fast|generic]
        [--force] [--verbose]

Reads prepare's interactions/, movies/, vocab/ and the training job's
MODEL_DIR/model.keras (and vocab/ copy); writes OUTPUT/recommendations
(Parquet: userId, rank, movieId, title, genres, score), OUTPUT/export (with
--set export=csv|json) and OUTPUT/manifest.json. The output directory is
replaced atomically, and only when it is missing, empty or an earlier score
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
from sparkrec.score import stages
from sparkrec.score.config import ScoreConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepare job output directory")
    parser.add_argument("--model", required=True, help="training job output directory (model.keras, vocab/)")
    outputs.add_arguments(parser, "output directory (local path or Hadoop URI)")
    console.add_argument(parser)
    add_config_arguments(parser, default_config=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_config(ScoreConfig, args.config, parse_overrides(args.overrides))
    console.quiet(args.verbose, tensorflow=True)
    log = get_logger("score")
    spark = start("sparkrec-score")
    timer = StageTimer(log)
    inputs = {"--data": args.data, "--model": args.model}
    with outputs.staged_output(spark, args.output, "score", inputs, args.force) as staging:
        inputs = stages.extract(spark, args.data, args.model, timer)
        plan = stages.plan(inputs, config, timer)
        log.info("path %s (%s), kernel %s, ranking by output %s", plan.path, plan.reason, plan.kernel, plan.output)
        scored = stages.transform(spark, inputs, plan, config, timer)
        loaded = stages.load(spark, scored, staging, config, timer)
        document = stages.manifest(spark, config, inputs, plan, scored, args.output, timer, loaded)
        runinfo.write_json(spark, f"{staging}/manifest.json", document, sort_keys=True)
    users, rows = document["users"], document["recommendations"]["rows"]
    log.info(
        "scored %s users (%s skipped) x %s movies: %s pairs at %s pairs/s, %s rows",
        f"{users['scored']:,}",
        f"{users['skipped']:,}",
        f"{document['catalogue_movies']:,}",
        f"{document['pairs_scored']:,}",
        f"{document['pairs_per_second'] or 0:,}",
        f"{rows:,}",
    )
    return document


if __name__ == "__main__":
    try:
        main()
    except SparkrecError as exc:
        sys.exit(f"score: {exc}")
