"""The prepare job submitted to real multi-JVM Spark clusters on loopback.

A standalone master with two workers (one core, 1 GB each) and `local-cluster[2,1,1024]`
run jobs/prepare.py through spark-submit with the packaged code (scripts/package.sh), from
a working directory outside the repository. Their outputs must equal the same job in
local[2] mode, also when a worker dies mid-job; a driver killed mid-job must leave the
committed output untouched, and the rerun must succeed.

Every job run costs about a minute of both cores, so runs are shared between tests: the
rerun after the killed driver is also the standalone run compared with local[2], and the one
that loses a worker mid-job.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pyspark
import pytest

from sparkrec.core import columns as C

from helpers import ROOT, SUBMITTED_PREPARE, load_job

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SPARK_HOME = Path(pyspark.__file__).parent
# Fits two 1-core, 1 GB workers on a 2-core machine; the profile's other settings apply as on a cluster.
SMALL = {
    "spark.driver.memory": "1g",
    "spark.executor.memory": "768m",
    "spark.executor.cores": "1",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
}
START_SECONDS = 120
JOB_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spark_env() -> dict[str, str]:
    """Loopback only; Python workers run this venv; SPARK_CONF_DIR carries log4j2.properties
    onto every JVM's classpath, as a cluster's Spark conf directory would."""
    return {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_CONF_DIR": str(ROOT / "conf" / "spark"),
        "PYSPARK_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


class Processes:
    """Every process a test starts, each in its own process group, so that a kill takes its
    children too (a worker's executors, spark-submit's Python driver) and nothing outlives the tests."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str], cwd: Path | None = None) -> subprocess.Popen:
        with open(self.scratch / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=spark_env(),
                cwd=cwd,
                start_new_session=True,
            )
        process.name = name
        self.running.append(process)
        return process

    def log(self, process: subprocess.Popen) -> str:
        return (self.scratch / f"{process.name}.log").read_text(errors="replace")

    def kill(self, process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        self.running.remove(process)

    def wait(self, process: subprocess.Popen, seconds: float) -> int:
        """The exit code; a process still running after `seconds` is killed and fails the test."""
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise AssertionError(
                f"{process.name} still running after {seconds}s:\n{self.log(process)[-3000:]}"
            ) from None
        self.running.remove(process)
        return process.returncode

    def kill_all(self) -> None:
        for process in list(self.running):
            self.kill(process)


def wait_until(condition, seconds: float, what: str, process: subprocess.Popen | None = None):
    """Poll `condition` until it returns something true; fail early if `process` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.name} exited ({process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


class StandaloneCluster:
    def __init__(self, processes: Processes, work: Path, workers: int = 2):
        self.processes = processes
        self.work = work
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.master = self._spark_class(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.ui_port),
        )
        self.workers = [self.start_worker(i) for i in range(workers)]
        self.wait_for_workers()

    def _spark_class(self, name: str, main_class: str, *args: str) -> subprocess.Popen:
        return self.processes.start(name, [str(SPARK_HOME / "bin" / "spark-class"), main_class, *args])

    def start_worker(self, index: int) -> subprocess.Popen:
        work_dir = self.work / f"worker{index}"
        work_dir.mkdir(exist_ok=True)
        return self._spark_class(
            f"worker{index}",
            "org.apache.spark.deploy.worker.Worker",
            self.url,
            "--cores",
            "1",
            "--memory",
            "1g",
            "--work-dir",
            str(work_dir),
            "--webui-port",
            "0",
        )

    def state(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as response:
                return json.load(response)
        except OSError:
            return {}

    def wait_for_workers(self) -> None:
        expected = len(self.workers)
        wait_until(
            lambda: self.state().get("aliveworkers") == expected,
            START_SECONDS,
            f"{expected} workers to register",
            self.master,
        )

    def wait_idle(self) -> None:
        """No application holds executors, so the next job gets every core."""
        wait_until(lambda: self.state().get("activeapps") == [], START_SECONDS, "applications to finish")

    def kill_worker(self, index: int) -> None:
        self.processes.kill(self.workers[index])

    def restart_worker(self, index: int) -> None:
        self.workers[index] = self.start_worker(index)
        self.wait_for_workers()

    def executor_logs(self) -> list[Path]:
        return sorted(self.work.glob("worker*/app-*/*/stderr"))


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    running = Processes(tmp_path_factory.mktemp("processes"))
    yield running
    running.kill_all()


@pytest.fixture(scope="module")
def cluster(processes, tmp_path_factory) -> StandaloneCluster:
    return StandaloneCluster(processes, tmp_path_factory.mktemp("standalone"))


@pytest.fixture(scope="module")
def submit_dir(tmp_path_factory) -> Path:
    """spark-submit runs from here, not the repository: every path it is given is absolute."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def reference(submitted_prepare) -> Path:
    """The same job in local[2] mode (sparkrec-submit's local profile)."""
    return submitted_prepare.output


def submit_command(master: str, package: Path, job: str, args: list[str]) -> list[str]:
    settings = [arg for key, value in SMALL.items() for arg in ("--conf", f"{key}={value}")]
    return [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--properties-file",
        str(ROOT / "conf" / "spark" / "standalone.conf"),
        "--master",
        master,
        "--py-files",
        str(package),
        *settings,
        str(ROOT / "jobs" / f"{job}.py"),
        *args,
    ]


def prepare_args(ml_small: Path, output: Path) -> list[str]:
    return ["--input", str(ml_small), "--output", str(output), *SUBMITTED_PREPARE]


@pytest.fixture(scope="module")
def start_job(processes, code_zip, submit_dir):
    def start(name: str, master: str, job: str, args: list[str]) -> subprocess.Popen:
        return processes.start(name, submit_command(master, code_zip, job, args), cwd=submit_dir)

    return start


def finish(processes: Processes, job: subprocess.Popen) -> str:
    """Wait for a job to succeed; returns its log."""
    code = processes.wait(job, JOB_SECONDS)
    log = processes.log(job)
    assert code == 0, f"{job.name} failed ({code}):\n{log[-3000:]}"
    return log


def wait_for_staging(job: subprocess.Popen, output: Path, killed_run: bool = False) -> None:
    """The quarantine is the first table prepare writes into its staging directory: the kill lands mid-job.
    `killed_run`: the staging holds a killed run's quarantine, which the job deletes as it takes the lock,
    tens of seconds before it writes its own (its contents go first: a fresh mtime tells nothing)."""
    first_table = output.with_name(output.name + ".staging") / "quarantine"
    if killed_run:
        wait_until(lambda: not first_table.exists(), JOB_SECONDS, f"the killed run's {first_table} to go", job)
    wait_until(first_table.exists, JOB_SECONDS, f"{first_table} to appear", job)


def read_sorted(path: Path, keys: list[str]) -> pd.DataFrame:
    return pq.read_table(path).to_pandas().sort_values(keys).reset_index(drop=True)


def manifest(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())


def assert_same_output(output: Path, expected: Path) -> None:
    """Same rows in every split and table, same vocabularies, same manifest counts."""
    for split in ("train", "test"):
        pd.testing.assert_frame_equal(
            read_sorted(output / split, [C.USER_ID, C.MOVIE_ID]), read_sorted(expected / split, [C.USER_ID, C.MOVIE_ID])
        )
    pd.testing.assert_frame_equal(
        read_sorted(output / "movies", [C.MOVIE_ID]), read_sorted(expected / "movies", [C.MOVIE_ID])
    )
    for name, (key, _) in C.VOCABULARIES.items():
        pd.testing.assert_frame_equal(
            read_sorted(output / "vocab" / name, [key]), read_sorted(expected / "vocab" / name, [key])
        )
    got, want = manifest(output), manifest(expected)
    for field in ("rows", "quarantine", "vocab_sizes", "sampled_user_ids_sha256", "figures"):
        assert got[field] == want[field], field


def digests(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


SPARK_DEFAULT_LOGGING = "Using Spark's default log4j profile"


@dataclass
class KilledAndRerun:
    output: Path
    before: dict[str, str]
    after_kill: dict[str, str]
    rerun_log: str


@pytest.fixture(scope="module")
def killed_and_rerun(cluster, processes, start_job, reference, ml_small, tmp_path_factory) -> KilledAndRerun:
    """A driver killed mid-job over a committed output (a copy of the local run), then the rerun,
    which loses a worker mid-job."""
    output = tmp_path_factory.mktemp("killed-driver") / "out"
    shutil.copytree(reference, output)
    before = digests(output)
    cluster.wait_idle()
    job = start_job("submit-killed-driver", cluster.url, "prepare", prepare_args(ml_small, output))
    wait_for_staging(job, output)
    processes.kill(job)
    after_kill = digests(output)
    # The master drops the application once its driver is gone, freeing the executors' cores.
    cluster.wait_idle()
    rerun = start_job("submit-rerun", cluster.url, "prepare", prepare_args(ml_small, output))
    wait_for_staging(rerun, output, killed_run=True)
    cluster.kill_worker(0)
    # A replacement node joins; the master gives the running application an executor on it.
    cluster.restart_worker(0)
    rerun_log = finish(processes, rerun)
    return KilledAndRerun(output, before, after_kill, rerun_log)


def test_killed_driver_leaves_committed_output(killed_and_rerun):
    assert killed_and_rerun.after_kill == killed_and_rerun.before


def test_rerun_on_standalone_cluster_matches_local(killed_and_rerun, reference, cluster):
    output = killed_and_rerun.output
    assert_same_output(output, reference)
    # The rerun replaced the copied local output rather than leaving it in place.
    assert manifest(output)["spark"]["master"] == cluster.url
    assert not output.with_name(output.name + ".staging").exists()


def test_cluster_logs_are_quiet_and_show_progress(killed_and_rerun, cluster):
    log = killed_and_rerun.rerun_log
    assert "INFO sparkrec.prepare: prepared " in log
    assert SPARK_DEFAULT_LOGGING not in log
    executor_logs = cluster.executor_logs()
    assert len(executor_logs) >= 2
    for path in executor_logs:
        assert SPARK_DEFAULT_LOGGING not in path.read_text(errors="replace"), path


def test_local_cluster_matches_local(processes, start_job, reference, ml_small, tmp_path):
    output = tmp_path / "out"
    # local-cluster's workers ignore SPARK_WORKER_DIR and write under SPARK_HOME, inside the venv.
    work = SPARK_HOME / "work"
    before = set(work.glob("app-*"))
    try:
        finish(
            processes,
            start_job("submit-local-cluster", "local-cluster[2,1,1024]", "prepare", prepare_args(ml_small, output)),
        )
    finally:
        for directory in set(work.glob("app-*")) - before:
            shutil.rmtree(directory)
    assert_same_output(output, reference)


def test_lost_worker_is_survived_by_task_retry(killed_and_rerun, reference):
    assert "Lost executor" in killed_and_rerun.rerun_log
    assert_same_output(killed_and_rerun.output, reference)


@pytest.fixture(scope="module")
def model_dir(reference, tmp_path_factory) -> Path:
    """A paper model with seeded random weights, saved as the training job saves one:
    scoring does not care whether it was trained."""
    import keras

    from sparkrec.models import pairwise as model
    from sparkrec.score.config import MODEL_FILE

    keras.utils.set_random_seed(7)
    directory = tmp_path_factory.mktemp("model") / "paper"
    directory.mkdir()
    model.build_paper_model(manifest(reference)["vocab_sizes"]).save(directory / MODEL_FILE)
    shutil.copytree(reference / "vocab", directory / "vocab")
    return directory


def score_args(data: Path, model: Path, output: Path) -> list[str]:
    return ["--data", str(data), "--model", str(model), "--output", str(output)]


@pytest.mark.usefixtures("spark")  # the local run's SparkSession
def test_score_on_standalone_cluster_matches_local(cluster, processes, start_job, reference, model_dir, tmp_path):

    local, clustered = tmp_path / "local", tmp_path / "cluster"
    load_job("score").main(score_args(reference, model_dir, local))
    cluster.wait_idle()
    finish(processes, start_job("submit-score", cluster.url, "score", score_args(reference, model_dir, clustered)))
    keys = [C.USER_ID, C.RANK]
    pd.testing.assert_frame_equal(
        read_sorted(clustered / "recommendations", keys), read_sorted(local / "recommendations", keys)
    )
    got, want = manifest(clustered), manifest(local)
    for field in ("path", "users", "pairs_scored", "recommendations"):
        assert got[field] == want[field], field
