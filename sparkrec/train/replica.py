"""One worker of data-parallel training: a TensorFlow process joining MultiWorkerMirroredStrategy.

    python -m sparkrec.train.replica SPEC_JSON        (started by sparkrec.train.launcher)

TF_CONFIG (set by the launcher) names every worker and this one's index; SPEC_JSON holds the
prepared data, the resolved settings, the driver's staging and backup directories and the job's
command line. Each worker runs the training job's transform (`stages.transform`) on its part of
every batch; the chief (index 0) writes the model directory into the driver's staging directory
and keeps the resumable state in the shared backup. The others write only to a scratch
directory deleted when they exit: they start from a copy of the shared backup, so a resumed run
resumes every worker at the same epoch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sparkrec.core import console
from sparkrec.core.config import load_config
from sparkrec.core.runinfo import get_logger
from sparkrec.train.config import TrainConfig

# The launcher gives each worker the task's CPUs (spark.task.cpus): TensorFlow's default thread
# pools take every core of the machine, which N workers on one machine would oversubscribe.
CPUS_VARIABLE = "SPARKREC_WORKER_CPUS"
# The write end of a pipe (a file descriptor) to the launcher: this worker writes to it once it
# has joined the others, then at most once a second as its training steps end. Silent for
# worker_timeout seconds, it is killed (sparkrec.train.launcher).
PROGRESS_VARIABLE = "SPARKREC_WORKER_PROGRESS_FD"
log = get_logger("train")


def main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    console.quiet(spec["verbose"], tensorflow=True)
    import tensorflow as tf  # after console has chosen its logging

    from sparkrec.train import stages
    from sparkrec.train.fitting import Replica

    config = load_config(TrainConfig, None, spec["config"])
    cluster = json.loads(os.environ["TF_CONFIG"])
    index, count = cluster["task"]["index"], len(cluster["cluster"]["worker"])
    threads = config.intra_op_threads or int(os.environ.get(CPUS_VARIABLE, "0"))
    # Thread pools before the strategy: creating it starts TensorFlow's runtime, which fixes them.
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    # No CommunicationOptions(timeout_seconds): with it a worker gained ~180 threads a second and
    # died out of threads (SIGABRT) within two minutes on ML-20M-scale data (docs/cluster.md).
    # The launcher's progress watch bounds a hang instead.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    stages.configure_runtime(config)
    progress = Progress.of(os.environ.pop(PROGRESS_VARIABLE, None))
    replica = Replica(index, count, strategy, progress)
    progress()
    log.info("worker %d of %d (pid %d) joined %s", index, count, os.getpid(), ", ".join(cluster["cluster"]["worker"]))
    prepared = stages.extract(spec["data"])
    backup = Path(spec["backup"])
    with tempfile.TemporaryDirectory(prefix=f"sparkrec-worker{index}-") as scratch:
        if replica.index == 0:
            staging = Path(spec["staging"])
        else:
            staging = Path(scratch) / "staging"
            staging.mkdir()
            backup = _scratch_backup(backup, Path(scratch))
        trained = stages.transform(prepared, config, staging, backup, replica)
        if replica.index == 0:
            stages.load(trained, prepared, staging, spec["command"])
    log.info("worker %d of %d done", index, count)


class Progress:
    """Tells the launcher this worker is alive and moving: a byte on its pipe, at most once a second."""

    def __init__(self, descriptor: int | None):
        self.descriptor = descriptor
        self.last = -math.inf

    @classmethod
    def of(cls, variable: str | None) -> Progress:
        return cls(int(variable) if variable else None)

    def __call__(self) -> None:
        now = time.monotonic()
        if self.descriptor is not None and now - self.last >= 1.0:
            os.write(self.descriptor, b".")
            self.last = now


def _scratch_backup(shared: Path, scratch: Path) -> Path:
    """A copy of the shared backup for a non-chief worker to resume from and write to.

    The launcher prepared it before any worker started, and the chief writes to it only at the end
    of an epoch, which no worker reaches before every worker has built its model.
    """
    return Path(shutil.copytree(shared, scratch / "backup"))


if __name__ == "__main__":
    main(sys.argv[1:])
