"""Data-parallel training on a Spark cluster: N TensorFlow workers gang-scheduled as one barrier stage.

jobs/train.py with `workers: N` (N > 1), under spark-submit, calls `train`: one barrier stage of
N tasks (Spark starts all of them at once or none). Each task picks a free port on its executor's
host, the tasks agree on every worker's host:port through `allGather` (ordered by partition id,
which is each worker's index: task 0 is the chief), and each starts its worker,
`python -m sparkrec.train.replica`, with that TF_CONFIG, then waits for it. The worker is a
process of its own so that every stage attempt starts TensorFlow afresh (MultiWorkerMirroredStrategy
must be created before TensorFlow's runtime starts, and Spark reuses Python workers), and dies
with the task that started it (a killed task kills its worker).

Failure: a worker that exits non-zero (killed, or failed by the strategy's heartbeats when a peer
died), or that shows no progress for `worker_timeout` seconds (it writes to a pipe once it has
joined the others, then as its training steps end; the task kills it otherwise), fails its task,
which fails the barrier stage as a whole:
Spark kills the other tasks (and so their workers) and retries the stage up to
spark.stage.maxConsecutiveAttempts times; each attempt resumes from the shared backup. When
retries run out the job exits with one line naming the worker and why it stopped (its signal, or
the last exception it printed).

Nothing here imports TensorFlow: the tasks run in Spark's Python workers.
"""

from __future__ import annotations

import codecs
import ctypes
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pyspark import BarrierTaskContext
from pyspark.sql import SparkSession

from sparkrec.core.config import to_dict
from sparkrec.core.errors import SparkrecError
from sparkrec.train.config import TrainConfig
from sparkrec.train.replica import CPUS_VARIABLE, PROGRESS_VARIABLE

# How often Spark checks for the barrier stage's free slots (its default is 15 s): executors that
# register a few seconds late delay the start by that much.
SLOT_CHECK_SECONDS = 5
_FAILURE = re.compile(r"sparkrec worker (\d+) of (\d+): ([^\n]*)")
# A Python exception's line, its class's module path dropped: what a worker's output says last of its error.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b.*)$")
MAX_REASON = 300
# How long a task waits for the rest of an exited worker's output (held open by a process it left).
COPY_SECONDS = 10
# What each barrier task runs, after its Python interpreter and before the spec.
REPLICA = ("-m", "sparkrec.train.replica")


class WorkerError(SparkrecError):
    """A worker failed, or the cluster cannot run the workers at once."""


def spark_settings(config: TrainConfig) -> dict[str, str]:
    """Session settings of a distributed run: set-up waits `worker_timeout`, not Spark's defaults
    (a year for a barrier sync, ten minutes for free slots)."""
    return {
        "spark.barrier.sync.timeout": f"{config.worker_timeout}s",
        "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": f"{SLOT_CHECK_SECONDS}s",
        "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": str(
            max(1, -(-config.worker_timeout // SLOT_CHECK_SECONDS))
        ),
    }


def tf_config(addresses: list[str], index: int) -> dict:
    """TF_CONFIG of worker `index` among `addresses` (host:port, in worker order; worker 0 is the chief)."""
    return {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}


def free_port(host: str) -> int:
    """A port free on `host` now. The worker binds it moments later; another process taking it in
    between fails the worker's start, and with it the stage attempt (Spark retries it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def failure(index: int, count: int, reason: str) -> str:
    return f"sparkrec worker {index} of {count}: {reason}"


def last_words(output: str) -> str:
    """The line of a worker's output that says why it stopped: its last exception, or its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [found.group(1) for found in map(_EXCEPTION.match, lines) if found]
    words = errors[-1] if errors else lines[-1] if lines else "no output"
    return words if len(words) <= MAX_REASON else words[: MAX_REASON - 3] + "..."


def reason(message: str, workers: int) -> str:
    """One line for a failed barrier stage: the first failed worker's own reason, or Spark's."""
    found = _FAILURE.search(message)
    if found:
        return f"worker {found.group(1)} of {found.group(2)} failed: {found.group(3)}"
    if "SPARK-24819" in message or "more slots than the total number" in message:
        return (
            f"workers={workers} needs {workers} free task slots at once (barrier mode), more than the cluster has: "
            "give it at least that many executor cores / spark.task.cpus (docs/cluster.md)"
        )
    if "SPARK-24942" in message or "does not support dynamic resource allocation" in message:
        return f"workers={workers} runs a barrier stage, which Spark cannot with dynamic allocation: " + (
            "--conf spark.dynamicAllocation.enabled=false and a fixed executor count (docs/cluster.md)"
        )
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return f"the barrier stage of {workers} workers failed: {lines[0] if lines else 'no reason given'}"


def train(
    spark: SparkSession,
    data: Path,
    config: TrainConfig,
    staging: Path,
    backup: Path,
    command: list[str],
    verbose: bool,
    replica: tuple[str, ...] = REPLICA,
) -> dict:
    """Train on `config.workers` barrier tasks; the chief writes the model into `staging`. Returns metrics.json.

    Each task runs `python *replica SPEC` (tests give another program in its place)."""
    spec = json.dumps(
        {
            "data": str(data.resolve()),
            "config": to_dict(config),
            "staging": str(staging.resolve()),
            "backup": str(backup.resolve()),
            "command": command,
            "verbose": verbose,
        }
    )
    workers = config.workers
    run = _task(spec, list(replica), config.worker_timeout)
    stage = spark.sparkContext.parallelize(range(workers), workers).barrier().mapPartitions(run)
    try:
        # Spark never retries a barrier stage whose tasks return their results to the driver (a
        # ResultStage: some results may be in already); through a shuffle it is a map stage, which it does.
        stage.repartition(1).collect()
    except Exception as exc:  # Py4J's and Spark's errors alike: the message is all they carry
        raise WorkerError(reason(str(exc), workers)) from None
    return json.loads((staging / "metrics.json").read_text())


def _task(spec: str, replica: list[str], timeout: int):
    def run(_):
        context = BarrierTaskContext.get()
        index = context.partitionId()
        host = context.getTaskInfos()[index].address.rsplit(":", 1)[0]
        addresses = context.allGather(f"{host}:{free_port(host)}")
        environ = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config(addresses, index)),
            CPUS_VARIABLE: str(context.cpus()),
            # What this task imports from (--py-files reach its sys.path only), the worker imports from.
            "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        }
        problem = run_worker([sys.executable, *replica, spec], environ, timeout)
        if problem:
            raise RuntimeError(failure(index, len(addresses), problem))
        yield index

    return run


def run_worker(command: list[str], environ: dict[str, str], timeout: float) -> str | None:
    """Run one worker to its end, its output copied to the executor's stderr as it comes (the
    executor's log: docs/cluster.md). Returns why it failed, or None.

    The worker writes to the pipe named by PROGRESS_VARIABLE when it has joined the others and
    then as its steps end; one silent for `timeout` seconds (from its start, or from its last
    word) is killed (SIGKILL) and reaped: TensorFlow's collectives never time out by themselves
    (sparkrec.train.replica says why)."""
    progress_read, progress_write = os.pipe()
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                command,
                env={**environ, PROGRESS_VARIABLE: str(progress_write)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(progress_write,),
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(progress_write)  # the worker's copy is the only one left: its exit ends the pipe
        copier = threading.Thread(target=_copy, args=(process.stdout, output), daemon=True)
        copier.start()
        try:
            stalled = _watch(progress_read, process, timeout)
        finally:
            os.close(progress_read)
        if stalled:
            process.kill()
        code = process.wait()
        copier.join(COPY_SECONDS)
        text = os.pread(output.fileno(), os.fstat(output.fileno()).st_size, 0).decode(errors="replace")
    if stalled:
        return f"{stalled} {timeout:g} s (worker_timeout), killed; its last output: {last_words(text)}"
    if code < 0:  # its output stops wherever the signal found it: no reason in it
        return f"killed by signal {-code} ({signal.Signals(-code).name})"
    if code > 0:
        return f"exit status {code}: {last_words(text)}"
    return None


def _copy(source, output) -> None:
    """A worker's output, as it comes, to this task's stderr and to `output`, until the worker closes it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: source.read1(1 << 16), b""):
        output.write(chunk)
        output.flush()
        sys.stderr.write(decoder.decode(chunk))
        sys.stderr.flush()
    source.close()


def _watch(pipe: int, process: subprocess.Popen, timeout: float) -> str | None:
    """Wait for the worker to exit (which closes the pipe); if it is silent on the pipe for `timeout`
    seconds first, say how: 'not joined after' (never wrote) or 'no progress for'."""
    joined = False
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([pipe], [], [], left)[0]:
            continue
        if os.read(pipe, 4096):
            joined = True
            deadline = time.monotonic() + timeout
            continue
        # The pipe closed: the worker exited, or closed it and runs on, silent.
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
            return None
        except subprocess.TimeoutExpired:
            break
    return "no progress for" if joined else "not joined after"


def _die_with_parent() -> None:
    """In the worker, before it runs: the kernel kills it when the task's process dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
