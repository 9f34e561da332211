"""Data-parallel training throughput: the two-tower model on 1 worker vs 2 workers on this machine.

    python bench/distributed_train.py --data PREPARED_DIR --work DIR [--epochs 3] [--set key=value ...]

Three runs of jobs/train.py on the same data and settings, same global batch:

1. one worker on every core (`python jobs/train.py`, TensorFlow's default thread pools): today's job;
2. two workers (`--set workers=2`) through sparkrec-submit on `local-cluster[2,1,2048]`: two
   executors of one core, one barrier task each, TensorFlow on one thread per worker;
3. one worker on one thread with half the global batch: what each worker of run 2 computes
   per step, with nobody to wait for.

Rows/s are the job's own figure (train ratings over each epoch's training time, validation
excluded), the mean of the epochs after the first (which traces the step). Efficiency is run 2's
rows/s over twice run 3's, and over run 1's; the epoch time run 2 spends beyond run 3 is the
price of being two: the gradient all-reduce each step, and waiting for the slower worker.
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
# The executors import this checkout's sparkrec, whatever the environment has installed.
CLUSTER = ["--master", "local-cluster[2,1,2048]", "--conf", "spark.ui.enabled=false"]
CLUSTER += ["--conf", "spark.executor.memory=1g", "--conf", f"spark.executorEnv.PYTHONPATH={ROOT}"]


def run(name: str, command: list[str], work: Path) -> dict:
    output = work / name
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(output.with_name(name + ".backup"), ignore_errors=True)
    environ = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with open(work / f"{name}.log", "wb") as log:
        subprocess.run(
            [*command, "--output", str(output)], check=True, stdout=log, stderr=subprocess.STDOUT, env=environ
        )
    wall = time.perf_counter() - started
    metrics = json.loads((output / "metrics.json").read_text())
    rates = [entry["rows_per_s"] for entry in metrics["history"][1:]] or [metrics["history"][0]["rows_per_s"]]
    rate = sum(rates) / len(rates)
    return {"rows_per_s": rate, "epoch_s": metrics["rows"]["train"] / rate, "wall_s": wall, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="jobs/train.py settings")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    settings = [f"epochs={args.epochs}", "keras_verbose=0", *args.overrides]
    batch = int(next((s.split("=")[1] for s in reversed(settings) if s.startswith("batch_size=")), 256))
    flags = [flag for setting in settings for flag in ("--set", setting)]
    job = [str(ROOT / "jobs" / "train.py"), "--data", args.data, *flags]
    submit = str(Path(sys.executable).parent / "sparkrec-submit")
    one = run("one", [sys.executable, *job], work)
    two = run("two", [submit, *CLUSTER, *job, "--set", "workers=2"], work)
    half = run("half", [sys.executable, *job, "--set", f"batch_size={batch // 2}", "--set", "intra_op_threads=1"], work)
    print(f"global batch {batch}, {one['metrics']['rows']['train']:,} train ratings an epoch, {args.epochs} epochs")
    print(f"{'run':<52}{'rows/s':>10}{'epoch s':>10}{'job s':>9}{'val NDCG@10':>13}{'test acc':>10}")
    for label, result in (
        ("1 worker, all cores", one),
        ("2 workers (local-cluster, 1 core each)", two),
        (f"1 worker, 1 thread, batch {batch // 2} (a worker's share)", half),
    ):
        history = result["metrics"]["history"]
        print(
            f"{label:<52}{result['rows_per_s']:>10,.0f}{result['epoch_s']:>10.2f}{result['wall_s']:>9.0f}"
            f"{history[-1]['val_ndcg@10']:>13.4f}{result['metrics']['test']['like']['accuracy']:>10.4f}"
        )
    print(f"speed-up of 2 workers over 1: {two['rows_per_s'] / one['rows_per_s']:.2f}x")
    print(f"efficiency (2 workers / twice a worker's share alone): {two['rows_per_s'] / (2 * half['rows_per_s']):.0%}")
    print(f"epoch time spent on being two (all-reduce, waiting): {two['epoch_s'] - half['epoch_s']:.2f} s")
    parameters = json.loads((work / "two" / "run.json").read_text())["parameters"]
    print(f"all-reduced each step: the gradients of {parameters:,} parameters ({parameters * 4 / 2**20:.1f} MiB dense)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
