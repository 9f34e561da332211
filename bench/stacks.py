"""The current stack beside the legacy stack, in one run: the Petastorm training feed, prepare and score.

    python bench/stacks.py --raw /tmp/ml20m-synth --feed-data data/ml-small --work /tmp/bench-stacks \
        [--legacy .venv-legacy] [--current .venv]

Each stack is a virtualenv with sparkrec installed (`make venv`, and `make test-legacy`'s
.venv-legacy from constraints-legacy.txt). For each, in turn, this runs
- bench/train_throughput.py on --feed-data (a prepared ml-latest-small): the Petastorm feed's
  rows/s against the in-memory ceiling at batch 64 and 1024 (the paper model; best of two);
- jobs/prepare.py on --raw (the generated full-scale set, default settings), timed from the
  job's own manifest (stages) and as spark-submit's wall time;
- jobs/score.py --set users=all on that stack's prepared output with the default two-tower
  architecture (seeded random weights, one model for both stacks: throughput does not depend
  on the weights), from its manifest: the score stage and its pairs per second.
Then it prints every figure side by side with current / legacy. Outputs go under --work, in a
directory of this run's own that is removed at the end.
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

from score_throughput import random_model

from sparkrec.core import console

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("legacy", "current")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="raw MovieLens-layout input of the prepare runs")
    parser.add_argument("--feed-data", required=True, help="prepared directory the feed benchmark reads")
    parser.add_argument("--work", default="/tmp/bench-stacks", help="scratch directory")
    parser.add_argument("--legacy", default=str(ROOT / ".venv-legacy"), help="the legacy stack's virtualenv")
    parser.add_argument("--current", default=str(ROOT / ".venv"), help="the current stack's virtualenv")
    return parser.parse_args()


def run(venv: Path, command: list[str]) -> float:
    """Run `command` (its first word a program of `venv`) from the project root; return its wall seconds."""
    command = [str(venv / "bin" / command[0]), *command[1:]]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def versions(venv: Path) -> str:
    script = (
        "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
        "('pyspark', 'pyarrow', 'numpy', 'pandas', 'tensorflow-cpu')))"
    )
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], check=True, capture_output=True, text=True
    ).stdout.strip()


def measure(venv: Path, args: argparse.Namespace, scratch: Path, model: Path | None) -> tuple[dict, Path]:
    """One stack's figures, and its prepared output."""
    out = scratch / venv.name
    figures = {}
    feed_json = out / "feed.json"
    out.mkdir()
    run(
        venv,
        ["python", "bench/train_throughput.py", "--data", args.feed_data, "--repeats", "2", "--json", str(feed_json)],
    )
    feed = json.loads(feed_json.read_text())
    for batch, rates in feed["batches"].items():
        figures[f"feed rows/s, batch {batch}"] = rates["petastorm"]
        figures[f"in-memory rows/s, batch {batch}"] = rates["in_memory"]
        figures[f"feed / in-memory, batch {batch}"] = rates["petastorm"] / rates["in_memory"]
    figures["make_batch_reader rows/s"] = feed["readers"]["make_batch_reader"]
    prepared = out / "prepared"
    wall = run(venv, ["sparkrec-submit", "jobs/prepare.py", "--input", args.raw, "--output", str(prepared)])
    manifest = json.loads((prepared / "manifest.json").read_text())
    figures["prepare wall s"] = wall
    figures.update({f"prepare {stage} s": seconds for stage, seconds in manifest["timings_s"].items()})
    model = model or random_model("twotower", prepared, scratch / "model")
    scores = out / "scores"
    wall = run(
        venv,
        [
            "sparkrec-submit",
            "--conf",
            "spark.executorEnv.OPENBLAS_NUM_THREADS=1",
            "jobs/score.py",
            "--data",
            str(prepared),
            "--model",
            str(model),
            "--output",
            str(scores),
            "--set",
            "users=all",
        ],
    )
    manifest = json.loads((scores / "manifest.json").read_text())
    figures["score wall s"] = wall
    figures["score stage s"] = manifest["timings_s"]["score"]
    figures["score M pairs/s"] = manifest["pairs_scored"] / manifest["timings_s"]["score"] / 1e6
    return figures, model


def main() -> None:
    args = parse_args()
    console.quiet(verbose=False, tensorflow=True)  # random_model runs Keras here
    args.raw, args.feed_data = str(Path(args.raw).resolve()), str(Path(args.feed_data).resolve())
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    venvs = {"legacy": Path(args.legacy).resolve(), "current": Path(args.current).resolve()}
    print(f"cores {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}", flush=True)
    figures, model = {}, None
    for stack in STACKS:
        figures[stack], model = measure(venvs[stack], args, scratch, model)
    shutil.rmtree(scratch)
    print(f"load average after {os.getloadavg()[0]:.1f}")
    for stack in STACKS:
        print(f"{stack}: {versions(venvs[stack])}")
    print(f"{'figure':<34} {'legacy':>12} {'current':>12} {'current/legacy':>15}")
    for name, legacy in figures["legacy"].items():
        current = figures["current"][name]
        print(f"{name:<34} {legacy:>12,.2f} {current:>12,.2f} {current / legacy:>15.2f}")


if __name__ == "__main__":
    sys.exit(main())
