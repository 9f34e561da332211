"""Scoring throughput: the default two-tower model and the paper model's fast and generic paths, and MLlib
ALS's recommendForAllUsers, in one run.

    python bench/score_throughput.py --data /tmp/ml20m-prepared [--model MODEL_DIR] \
        [--work /tmp/score-bench] [--generic-users 100] [--als-rank N] [--set key=value ...]

Runs jobs/score.py with spark-submit (conf/spark/local.conf): every user
(users=all) with the two-tower model (user vectors from each user's history,
then one matrix product per block of users), every user with the paper model on
its fast path, then the lowest --generic-users userIds on the paper model's
generic path (Keras predict_on_batch on every candidate pair, in the same Spark
pandas UDF). Then it fits MLlib's implicit ALS at the two-tower model's vector
width for one iteration on interactions/ (its quality is not the point) and times
`recommendForAllUsers(10)` written to Parquet: the same users and movies, without
excluding watched movies. Prints, from each run's manifest, the candidate pairs, the
seconds of the score stage (the pandas UDF, top-K and the Parquet write), the
pairs per second and their ratio, the job's wall time from spark-submit to
exit, and pairs per CPU second of the score stage (Python workers inside the
UDF plus the local-mode JVM): on a machine shared with other jobs, wall-clock
rates measure the neighbours too, CPU time does not.

Without --model, models with seeded random weights are built for the data's
vocabularies (the arithmetic does not depend on the weights; docs/benchmarks.md
quotes a trained model's run); --model replaces the two-tower one. Extra --set
settings go to every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparkrec.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = [
    str(Path(sys.executable).parent / "sparkrec-submit"),
    "--properties-file",
    str(ROOT / "conf" / "spark" / "local.conf"),
    # Spark runs one Python worker per core: numpy's BLAS must not start threads of its own.
    "--conf",
    "spark.executorEnv.OPENBLAS_NUM_THREADS=1",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepare job output (ML-20M scale for the reference figures)")
    parser.add_argument("--model", help="a two-tower training job output; default: a random-weight two-tower model")
    parser.add_argument("--work", default="/tmp/score-bench", help="scratch directory for the model and outputs")
    parser.add_argument("--generic-users", type=int, default=500, help="users scored on the generic path")
    parser.add_argument(
        "--als-rank",
        type=int,
        help="ALS rank; default: the two-tower vector width (--model's recorded tower_dim, else the training default)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args()


def random_model(kind: str, data: Path, target: Path) -> Path:
    """A `paper` or `twotower` model with seeded random weights, saved with the data's vocabularies."""
    import keras

    from sparkrec.models import pairwise as model
    from sparkrec.train.stages import build_model

    vocab_sizes = json.loads((data / "manifest.json").read_text())["vocab_sizes"]
    keras.utils.set_random_seed(0)
    target.mkdir()
    built = model.build_paper_model(vocab_sizes) if kind == "paper" else build_model(TrainConfig(), vocab_sizes)
    built.save(target / "model.keras")
    shutil.copytree(data / "vocab", target / "vocab")
    return target


def vector_width(model_dir: Path) -> int:
    """The two-tower model's vector width, as its training run recorded it (a random model: the default)."""
    record = model_dir / "run.json"
    if not record.exists():
        return TrainConfig().tower_dim
    return int(json.loads(record.read_text())["config"]["tower_dim"])


def score(data: Path, model: Path, output: Path, settings: list[str]) -> tuple[dict, float]:
    """Run jobs/score.py; return its manifest and the wall seconds of spark-submit."""
    command = [
        *SPARK_SUBMIT,
        str(ROOT / "jobs" / "score.py"),
        "--data",
        str(data),
        "--model",
        str(model),
        "--output",
        str(output),
    ]
    for setting in settings:
        command += ["--set", setting]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"score_throughput: the score job above exited with {done.returncode}; run it alone to see why")
    return json.loads((output / "manifest.json").read_text()), time.perf_counter() - started


def describe(name: str, manifest: dict, wall: float) -> tuple[float, float]:
    """Print one run's figures; return its pairs per second and pairs per CPU second."""
    seconds = manifest["timings_s"]["score"]
    rate, cpu_rate = manifest["pairs_scored"] / seconds, manifest["pairs_per_cpu_second"]
    cpu = manifest["worker_cpu_s"] + manifest["score_jvm_cpu_s"]
    print(
        f"{name:6s} {manifest['path']['chosen']:7s} {manifest['path']['kernel']:13s} "
        f"{manifest['users']['scored']:>7,} users x {manifest['catalogue_movies']:,} movies = "
        f"{manifest['pairs_scored']:>13,} pairs; score stage {seconds:6.1f} s = {rate / 1e6:7.2f} M pairs/s; "
        f"{cpu:6.1f} CPU s (Python {manifest['worker_cpu_s']:.1f}, JVM {manifest['score_jvm_cpu_s']:.1f}) = "
        f"{cpu_rate / 1e6:7.2f} M pairs per CPU s (user vectors {manifest['worker_user_vector_cpu_s']:.1f} CPU s); "
        f"job wall {wall:5.1f} s"
    )
    return rate, cpu_rate


def als_recommend_for_all(data: Path, output: Path, rank: int) -> tuple[int, int, float]:
    """(users, movies, seconds) of MLlib ALS's recommendForAllUsers(10) written to Parquet, after a 1-iteration fit."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    from sparkrec.core import columns as C

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "12g")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    ratings = spark.read.parquet(str(data / "interactions")).select(C.USER_ID, C.MOVIE_ID, C.LIKE).cache()
    als = ALS(
        rank=rank,
        maxIter=1,
        implicitPrefs=True,
        userCol=C.USER_ID,
        itemCol=C.MOVIE_ID,
        ratingCol=C.LIKE,
        seed=0,
        coldStartStrategy="drop",
    )
    fitted = als.fit(ratings)
    users, movies = fitted.userFactors.count(), fitted.itemFactors.count()
    started = time.perf_counter()
    fitted.recommendForAllUsers(10).write.parquet(str(output))
    seconds = time.perf_counter() - started
    spark.stop()
    return users, movies, seconds


def main() -> None:
    args = parse_args()
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    if not (data / "manifest.json").is_file():
        sys.exit(f"score_throughput: {data} is not a prepare job output (no manifest.json)")
    work.mkdir(parents=True, exist_ok=True)
    # The random models and ALS's output go in a directory of this run's own, deleted however it ends: nothing
    # already under --work is removed (the score jobs' outputs there are replaced only if they are theirs).
    with tempfile.TemporaryDirectory(prefix="run-", dir=work) as run_dir:
        scratch = Path(run_dir)
        towers = (
            Path(args.model).resolve() if args.model else random_model("twotower", data, scratch / "twotower-model")
        )
        als_rank = args.als_rank or vector_width(towers)
        paper = random_model("paper", data, scratch / "paper-model")
        print(f"cores {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}", flush=True)
        ours, ours_wall = score(data, towers, work / "twotower", ["users=all", *args.overrides])
        fast, fast_wall = score(data, paper, work / "fast", ["users=all", "path=fast", *args.overrides])
        generic_settings = ["users=all", "path=generic", f"limit_users={args.generic_users}", *args.overrides]
        generic, generic_wall = score(data, paper, work / "generic", generic_settings)
        als_users, als_movies, als_seconds = als_recommend_for_all(data, scratch / "als", als_rank)
    print(f"load average after {os.getloadavg()[0]:.1f}; stage timings (s) of the two-tower run: {ours['timings_s']}")
    ours_rate, _ = describe("towers", ours, ours_wall)
    fast_rate, fast_cpu = describe("fast", fast, fast_wall)
    generic_rate, generic_cpu = describe("keras", generic, generic_wall)
    als_rate = als_users * als_movies / als_seconds
    print(
        f"als    recommendForAllUsers(10), rank {als_rank}: {als_users:,} users x {als_movies:,} movies in "
        f"{als_seconds:.1f} s = {als_rate / 1e6:.2f} M pairs/s (watched movies not excluded)"
    )
    print(f"two-tower score stage / ALS recommendForAllUsers: {als_seconds / ours['timings_s']['score']:.1f}x faster")
    print(
        f"paper fast / generic: {fast_rate / generic_rate:.0f}x per second, "
        f"{fast_cpu / generic_cpu:.0f}x per CPU second"
    )


if __name__ == "__main__":
    main()
