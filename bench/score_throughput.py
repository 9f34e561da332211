"""Scoring throughput: the Spark job on the fast path against the Keras generic path, in one run.

    python bench/score_throughput.py --data /tmp/ml20m-prepared [--model MODEL_DIR] \
        [--work /tmp/score-bench] [--generic-users 100] [--set key=value ...]

Runs jobs/score.py twice with spark-submit (conf/spark/local.conf): every user
(users=all) on the fast path, then the lowest --generic-users userIds on the
generic path (Keras predict_on_batch on every candidate pair, in the same
Spark pandas UDF). Prints, from each run's manifest, the candidate pairs, the
seconds of the score stage (the pandas UDF, top-K and the Parquet write), the
pairs per second and their ratio, the job's wall time from spark-submit to
exit, and pairs per CPU second of the score stage (Python workers inside the
UDF plus the local-mode JVM): on a machine shared with other jobs, wall-clock
rates measure the neighbours too, CPU time does not.

Without --model, a paper model (Table 1) with random weights is built for the
data's vocabularies: throughput does not depend on the weights. Extra --set
settings go to both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = [
    str(Path(sys.executable).parent / "spark-submit"),
    "--properties-file", str(ROOT / "conf" / "spark" / "local.conf"),
    # Spark runs one Python worker per core: numpy's BLAS must not start threads of its own.
    "--conf", "spark.executorEnv.OPENBLAS_NUM_THREADS=1",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepare job output (ML-20M scale for the reference figures)")
    parser.add_argument("--model", help="training job output; default: a random-weight paper model")
    parser.add_argument("--work", default="/tmp/score-bench", help="scratch directory for the model and outputs")
    parser.add_argument("--generic-users", type=int, default=500, help="users scored on the generic path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args()


def random_paper_model(data: Path, target: Path) -> Path:
    """A paper model with seeded random weights, saved with the data's vocabularies (MODEL_DIR layout)."""
    import keras

    from sparkrec import model

    vocab_sizes = json.loads((data / "manifest.json").read_text())["vocab_sizes"]
    keras.utils.set_random_seed(0)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    model.build_paper_model(vocab_sizes).save(target / "model.keras")
    shutil.copytree(data / "vocab", target / "vocab")
    return target


def score(data: Path, model: Path, output: Path, settings: list[str]) -> tuple[dict, float]:
    """Run jobs/score.py; return its manifest and the wall seconds of spark-submit."""
    command = [*SPARK_SUBMIT, str(ROOT / "jobs" / "score.py"), "--data", str(data), "--model", str(model),
               "--output", str(output)]
    for setting in settings:
        command += ["--set", setting]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        f"{cpu_rate / 1e6:7.2f} M pairs per CPU s; job wall {wall:5.1f} s"
    )
    return rate, cpu_rate


def main() -> None:
    args = parse_args()
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    model = Path(args.model).resolve() if args.model else random_paper_model(data, work / "model")
    print(f"cores {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}", flush=True)
    fast, fast_wall = score(data, model, work / "fast", ["users=all", "path=fast", *args.overrides])
    generic_settings = ["users=all", "path=generic", f"limit_users={args.generic_users}", *args.overrides]
    generic, generic_wall = score(data, model, work / "generic", generic_settings)
    print(f"load average after {os.getloadavg()[0]:.1f}; stage timings (s) of the fast run: {fast['timings_s']}")
    fast_rate, fast_cpu = describe("fast", fast, fast_wall)
    generic_rate, generic_cpu = describe("keras", generic, generic_wall)
    print(f"fast / generic: {fast_rate / generic_rate:.0f}x per second, {fast_cpu / generic_cpu:.0f}x per CPU second")


if __name__ == "__main__":
    main()
