"""Train the like/dislike model on prepared MovieLens data and write it with its metrics.

    python jobs/train.py --data PREPARED_DIR --output MODEL_DIR \
        [--config conf/train.yaml] [--set model=paper] [--set key=value ...] [--force] [--verbose]

PREPARED_DIR is the output of jobs/prepare.py (its train/ and test/ are read
through Petastorm). MODEL_DIR receives model.keras, vocab/, metrics.json,
importance.json, run.json, figures/ and TensorBoard logs/; it is built in
MODEL_DIR.staging and renamed into place, so a failed run leaves the previous
model untouched. MODEL_DIR is replaced only when it is missing, empty or an
earlier training output (`--force` replaces anything but PREPARED_DIR or a
directory holding it). A killed run resumes from its last finished epoch, kept
in MODEL_DIR.backup until the new model is in place.

With `--set workers=N` (N > 1) it trains on N Spark tasks at once, submitted with
spark-submit (docs/cluster.md): sparkrec.train.launcher.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sparkrec.core import console, outputs, session
from sparkrec.core.config import add_config_arguments, load_config, parse_overrides
from sparkrec.core.errors import SparkrecError
from sparkrec.train.config import TrainConfig

DEFAULT_CONFIG = str(Path(__file__).resolve().parents[1] / "conf" / "train.yaml")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared directory (output of jobs/prepare.py)")
    outputs.add_arguments(parser, "model directory to write")
    add_config_arguments(parser, default_config=DEFAULT_CONFIG)
    console.add_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    args = parse_args(argv)
    console.quiet(args.verbose, tensorflow=True)
    from sparkrec.train import launcher, stages  # Keras and TensorFlow: once console has chosen their logging

    config = load_config(TrainConfig, args.config, parse_overrides(args.overrides)).resolved()
    stages.configure_runtime(config)
    output = Path(args.output)
    command = sys.argv if argv is None else ["jobs/train.py", *argv]
    with outputs.staged_output(
        None, args.output, "train", {"--data": args.data}, args.force, extra=(stages.BACKUP_SUFFIX,)
    ) as staging:
        prepared = stages.extract(args.data)
        backup = stages.backup_path(output)
        if config.workers == 1:
            trained = stages.transform(prepared, config, Path(staging), backup)
            document = stages.load(trained, prepared, Path(staging), command)
        else:
            stages.prepare_backup(backup, stages.fingerprint(prepared, config))
            with session.start("sparkrec-train", launcher.spark_settings(config)) as spark:
                document = launcher.train(spark, prepared.root, config, Path(staging), backup, command, args.verbose)
    print(stages.summary_line(document, output, time.perf_counter() - started), flush=True)
    return document


if __name__ == "__main__":
    try:
        main()
    except SparkrecError as exc:
        sys.exit(f"train: {exc}")
