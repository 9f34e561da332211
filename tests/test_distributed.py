"""Data-parallel training (`--set workers=N`): the pure pieces, the loss scaling, the barrier stage
with a stand-in worker, then the job on a cluster.

Two replicas of the two-tower Trainer on half a batch each must step as one on the whole batch.

The stand-in tests run launcher.train's barrier stage on the test session's local[2] with a small
program in the worker's place: workers that join and exit end the stage; a worker that never
joins, or stops reporting progress after joining, is killed after worker_timeout and named in one
line, leaving no process behind.

The cluster test runs jobs/train.py with workers=2 on `local-cluster[2,1,2048]` (two executor
JVMs of one core) through sparkrec-submit: a worker killed mid-run with no stage retries left
ends the job in one line naming it, leaving the previous model directory as it was; the rerun,
whose chief is killed once more mid-run, is retried by Spark, resumes from the shared backup
and ends within 0.01 like-accuracy and validation NDCG@10 of one worker with the same global batch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sparkrec.core.config import ConfigError, load_config
from sparkrec.models import saved
from sparkrec.train import launcher
from sparkrec.train.config import TrainConfig
from sparkrec.train.history import Histories, example_count, fold_examples, global_batches
from sparkrec.train.launcher import last_words, reason, spark_settings, tf_config

from helpers import ROOT, load_job, tree_digest

# --- the pure pieces -------------------------------------------------------------


def test_tf_config_lists_every_worker_in_task_order_and_names_this_one():
    addresses = ["10.0.0.5:4001", "10.0.0.7:4002", "10.0.0.5:4003"]
    assert tf_config(addresses, 2) == {
        "cluster": {"worker": addresses},
        "task": {"type": "worker", "index": 2},
    }


def histories() -> Histories:
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(1, 12), [1, 2, 3, 5, 8, 13, 21, 34, 4, 6, 9])
    movies = np.concatenate([rng.choice(np.arange(1, 60), size=n, replace=False) for n in np.bincount(users)[1:]])
    likes = rng.integers(0, 2, len(users))
    return Histories.from_rows(users, movies, likes, likes * 3.0 + 1.5, 12)


def examples(batch) -> list[tuple]:
    """Each example's filled slots: its target movies with their labels, its history movies."""
    filled = [(row, batch.target_movie[row] != 0, batch.history_movie[row] != 0) for row in range(len(batch.user_idx))]
    return [
        (
            batch.target_movie[row][target].tolist(),
            batch.target_like[row][target].tolist(),
            batch.history_movie[row][history].tolist(),
        )
        for row, target, history in filled
    ]


@pytest.mark.parametrize("parts", [2, 3])
def test_the_workers_parts_of_every_batch_make_the_one_worker_batch(parts):
    whole = list(fold_examples(histories(), 4, 8, 6, 10, np.random.default_rng([7, 1])))
    shards = [
        list(fold_examples(histories(), 4, 8, 6, 10, np.random.default_rng([7, 1]), p, parts)) for p in range(parts)
    ]
    assert all(len(shard) == len(whole) for shard in shards), "every worker runs the same number of steps"
    for step, batch in enumerate(whole):
        pieces = [shard[step] for shard in shards]
        assert [len(piece.user_idx) for piece in pieces] == [len(a) for a in np.array_split(batch.user_idx, parts)]
        assert np.concatenate([piece.user_idx for piece in pieces]).tolist() == batch.user_idx.tolist()
        assert [example for piece in pieces for example in examples(piece)] == examples(batch)


# Two replicas on two logical CPUs of one process (tf.distribute.MirroredStrategy: the same gradient
# sum as the multi-worker strategy's all-reduce) against no strategy, in a fresh Python: TensorFlow's
# devices are fixed once it starts. SGD, whose step grows with the gradient (Adam's barely does).
STEP = """
import json, sys
import numpy as np
import tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
from sparkrec.models import twotower
from sparkrec.train.history import fold_examples
from test_twotower import SIZES, literal_catalogue, literal_histories

example = next(fold_examples(literal_histories(), 2, 64, 1000, 1, np.random.default_rng(3))).arrays()
table = twotower.movie_table(literal_catalogue(), SIZES["movie"])

def step(strategy, batch, copies):
    with strategy.scope():
        pair = twotower.build(SIZES, dim=8, hidden=16, head_hidden=8)
        rng = np.random.default_rng(4)
        pair.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in pair.get_weights()])
        trainer = twotower.Trainer(pair, table, dislike_weight=0.3)
        trainer.compile(optimizer=keras.optimizers.SGD(0.5))
    before = pair.get_weights()
    dataset = tf.data.Dataset.from_tensors(batch).repeat(copies)
    data = dataset if copies == 1 else strategy.distribute_datasets_from_function(lambda _: dataset)
    trainer.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    return [(after - b).tolist() for after, b in zip(pair.get_weights(), before)]

whole = step(tf.distribute.get_strategy(), {k: np.concatenate([v, v]) for k, v in example.items()}, 1)
halves = step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), example, 2)
print(json.dumps({"whole": whole, "halves": halves}))
"""


@pytest.mark.slow
def test_two_replicas_on_half_a_batch_each_step_as_one_on_the_whole_batch():
    """A batch of one example twice: one replica steps on both, or two replicas on one each. Their
    losses (each a mean) are the same, so the summed gradients must be divided by the replica count."""
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", STEP], capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    moved = [np.asarray(delta) for delta in steps["whole"]]
    assert max(np.abs(delta).max() for delta in moved) > 1e-3, "the step moves the weights"
    for whole, halves in zip(moved, steps["halves"]):
        np.testing.assert_allclose(halves, whole, rtol=1e-4, atol=1e-6)


def test_a_last_batch_too_small_to_give_every_worker_an_example_is_dropped():
    assert global_batches(9, 4) == 3, "one worker keeps every example"
    assert global_batches(9, 4, 2) == 2, "1 example left for 2 workers: dropped"
    assert global_batches(10, 4, 2) == 3
    assert global_batches(8, 4, 3) == 2
    count = example_count(histories(), 4, 8)
    size = next(size for size in range(2, count) if count % size == 1)
    batches = list(fold_examples(histories(), 4, 8, 6, size, np.random.default_rng(0), 1, 2))
    assert len(batches) == count // size and all(len(batch.user_idx) >= size // 2 for batch in batches)


def test_distributed_settings_are_checked():
    assert load_config(TrainConfig, None, {"workers": 2}).workers == 2
    with pytest.raises(ConfigError, match="two-tower model only"):
        load_config(TrainConfig, None, {"workers": 2, "model": "deep"})
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        load_config(TrainConfig, None, {"workers": 0})
    settings = spark_settings(load_config(TrainConfig, None, {"workers": 2, "worker_timeout": 100}))
    assert settings["spark.barrier.sync.timeout"] == "100s"
    assert settings["spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures"] == "20", "100 s of checks"


def test_a_failed_barrier_stage_is_one_line_naming_the_worker():
    spark_error = (
        "An error occurred while calling o77.collectAndServe.\n: org.apache.spark.SparkException: Job aborted due "
        "to stage failure: Could not recover from a failed barrier ResultStage.\nTraceback (most recent call last):\n"
        '  File "launcher.py", line 131, in run\n'
        "RuntimeError: sparkrec worker 1 of 2: killed by signal 9 (SIGKILL)\n\tat org.apache.spark.api.python"
    )
    assert reason(spark_error, 2) == "worker 1 of 2 failed: killed by signal 9 (SIGKILL)"
    slots = "[SPARK-24819]: Barrier execution mode does not allow run a barrier stage that requires more slots"
    assert reason(slots, 4).startswith("workers=4 needs 4 free task slots at once")
    dynamic = "[SPARK-24942]: Barrier execution mode does not support dynamic resource allocation for now."
    assert "spark.dynamicAllocation.enabled=false" in reason(dynamic, 2)
    assert reason("\nSomething else\nand more", 2) == "the barrier stage of 2 workers failed: Something else"


def test_a_workers_last_words_are_its_last_exception():
    output = (
        "Epoch 3/30\nTraceback (most recent call last):\n  File 'x.py'\n"
        "tensorflow.python.framework.errors_impl.UnavailableError: Collective ops is aborted by: task 1 unhealthy\n"
        "The error could be from a previous operation.\n"
    )
    assert last_words(output) == "UnavailableError: Collective ops is aborted by: task 1 unhealthy"
    assert last_words("Epoch 1/2\n25/25 - 3s\n") == "25/25 - 3s"
    assert last_words("") == "no output"
    assert len(last_words("ValueError: " + "x" * 1000)) == 300


# --- the barrier stage with a stand-in for the worker ---------------------------------

# In each barrier task's place of `python -m sparkrec.train.replica SPEC`: adds its pid to a file
# in the staging directory (one line per stage attempt), then joins (writes to the launcher's
# pipe), reports progress for STEPS steps of 0.1 s and exits, the chief writing metrics.json; the
# worker named by HANG sleeps instead of joining (STEPS = 0) or after its steps.
STAND_IN = """
import json, os, sys, time
spec = json.loads(sys.argv[1])
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
with open(os.path.join(spec["staging"], f"worker{index}.pids"), "a") as out:
    out.write(f"{os.getpid()}\\n")
progress = int(os.environ["SPARKREC_WORKER_PROGRESS_FD"])
for step in range(STEPS):
    os.write(progress, b".")
    time.sleep(0.1)
if index == HANG:
    print("stand-in worker", index, "stuck after", STEPS, "steps", flush=True)
    time.sleep(3600)
if index == 0:
    with open(os.path.join(spec["staging"], "metrics.json"), "w") as out:
        json.dump({"workers": len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])}, out)
"""
# worker_timeout of the stand-in runs. A stand-in joins as soon as its Python is up (well under
# a second, with room for a loaded machine); a hung one costs TIMEOUT in each of Spark's up to
# 4 attempts of the stage.
TIMEOUT = 3
STAGE_SECONDS = 120  # a run with a hung worker must end well within this


def stand_in_run(spark, tmp_path: Path, hang: int, steps: int = 3) -> tuple[float, dict | Exception]:
    """launcher.train on the test session's local[2] with 2 stand-in workers: (seconds, metrics or the error).

    In a thread, so that a launcher which never ends fails the test: its job is then cancelled,
    which kills the tasks and their workers."""
    staging = tmp_path / "staging"
    staging.mkdir()
    config = load_config(TrainConfig, None, {"workers": 2, "worker_timeout": TIMEOUT})
    replica = ("-c", STAND_IN.replace("HANG", str(hang)).replace("STEPS", str(steps)))
    result: list = []

    def run():
        try:
            result.append(launcher.train(spark, tmp_path, config, staging, tmp_path / "backup", [], False, replica))
        except Exception as exc:  # what the test checks
            result.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(STAGE_SECONDS)
    if thread.is_alive():
        spark.sparkContext.cancelAllJobs()
        thread.join(60)
        raise AssertionError(f"launcher.train still running after {STAGE_SECONDS}s with worker {hang} hung")
    return time.monotonic() - started, result[0]


def running(tmp_path: Path) -> list[int]:
    """Processes whose command line names `tmp_path`: every stand-in worker's does (its spec)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(tmp_path).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_workers_that_join_and_exit_run_the_stage_to_its_end(spark, tmp_path):
    seconds, document = stand_in_run(spark, tmp_path, hang=-1)
    assert document == {"workers": 2}, document
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == ["metrics.json", "worker0.pids", "worker1.pids"]
    assert running(tmp_path) == []


@pytest.mark.parametrize(
    "steps, stalled", [(0, "not joined after"), (40, "no progress for")], ids=["never-joins", "stops-after-joining"]
)
def test_a_silent_worker_is_killed_after_worker_timeout_and_named_in_one_line(spark, tmp_path, steps, stalled):
    # 40 steps of 0.1 s report progress for 4 s, longer than TIMEOUT: the watch restarts at each word.
    seconds, error = stand_in_run(spark, tmp_path, hang=1, steps=steps)
    assert isinstance(error, launcher.WorkerError), error
    assert str(error) == (
        f"worker 1 of 2 failed: {stalled} {TIMEOUT} s (worker_timeout), killed; "
        f"its last output: stand-in worker 1 stuck after {steps} steps"
    )
    # Spark retries the failed stage (spark.stage.maxConsecutiveAttempts: 4 in the test session).
    hung = [int(pid) for pid in (tmp_path / "staging" / "worker1.pids").read_text().split()]
    assert 1 <= len(hung) <= 4
    assert len(hung) * TIMEOUT <= seconds < STAGE_SECONDS
    alive = [pid for pid in hung if Path(f"/proc/{pid}").exists()]
    assert alive == [], "every attempt's hung worker is killed and reaped"
    assert running(tmp_path) == [], "no worker outlives the stage"


# --- the job on a cluster ------------------------------------------------------------

SETTINGS = [
    *("--set epochs=4 --set tower_dim=16 --set tower_hidden=32 --set head_hidden=16".split()),
    *("--set validation_users=200 --set ema_momentum=0 --set keras_verbose=0 --set worker_timeout=120".split()),
]
CLUSTER = [
    *("--master local-cluster[2,1,2048] --conf spark.ui.enabled=false --conf spark.executor.memory=1g".split()),
    *("--conf", f"spark.executorEnv.PYTHONPATH={ROOT}"),
]
JOB_SECONDS = 300


def submit(data: Path, output: Path, log: Path, *conf: str) -> subprocess.Popen:
    environ = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_CONF_DIR": str(ROOT / "conf" / "spark"),
        "PYTHONPATH": str(ROOT),
    }
    command = [str(Path(sys.executable).parent / "sparkrec-submit"), *CLUSTER, *conf, str(ROOT / "jobs" / "train.py")]
    command += ["--data", str(data), "--output", str(output), *SETTINGS, "--set", "workers=2"]
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True)


def finish(process: subprocess.Popen, log: Path) -> int:
    try:
        return process.wait(timeout=JOB_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"still running after {JOB_SECONDS}s:\n{log.read_text()[-3000:]}") from None


def epochs_kept(backup: Path) -> int:
    try:
        return len(json.loads((backup / "state.json").read_text())["history"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def worker_pid(session: int, index: int) -> int | None:
    """The pid of worker `index` (a `python -m sparkrec.train.replica` process) started under `session`."""
    for entry in Path("/proc").iterdir():
        try:
            pid = int(entry.name)
            if os.getsid(pid) != session or b"sparkrec.train.replica" not in (entry / "cmdline").read_bytes():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (ValueError, OSError):
            continue
        config = next((v for v in environ if v.startswith(b"TF_CONFIG=")), None)
        if config and json.loads(config.partition(b"=")[2])["task"]["index"] == index:
            return pid
    return None


def kill_worker_after(process: subprocess.Popen, backup: Path, epochs: int, index: int) -> None:
    """Kill worker `index` once the backup holds `epochs` epochs (the next epoch is under way)."""
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        pid = worker_pid(process.pid, index)
        if pid is not None and epochs_kept(backup) >= epochs:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.5)
    raise AssertionError(f"worker {index} never reached epoch {epochs + 1} (job exit {process.poll()})")


@pytest.mark.cluster
@pytest.mark.slow
def test_two_workers_fail_in_one_line_resume_after_a_retried_stage_and_train_as_one(prepared_small, tmp_path):
    one = load_job("train").main(["--data", str(prepared_small), "--output", str(tmp_path / "one"), *SETTINGS])
    output, backup = tmp_path / "two", tmp_path / "two.backup"
    shutil.copytree(tmp_path / "one", output)  # an earlier model, which a failed run must leave as it was
    before = tree_digest(output)

    log = tmp_path / "killed.log"
    job = submit(prepared_small, output, log, "--conf", "spark.stage.maxConsecutiveAttempts=1")
    kill_worker_after(job, backup, 1, index=1)
    killed = time.monotonic()
    assert finish(job, log) != 0
    assert time.monotonic() - killed < 120, "a dead worker ends the job, never a hang"
    said = [line for line in log.read_text().splitlines() if line.startswith("train: ")]
    assert said == ["train: worker 1 of 2 failed: killed by signal 9 (SIGKILL)"], said
    assert tree_digest(output) == before, "the previous model directory is intact"
    assert epochs_kept(backup) >= 1

    log = tmp_path / "retried.log"
    job = submit(prepared_small, output, log)
    kill_worker_after(job, backup, 2, index=0)  # the chief, once: Spark retries the stage
    assert finish(job, log) == 0, log.read_text()[-3000:]
    assert "sparkrec worker 0 of 2: killed by signal 9 (SIGKILL)" in log.read_text(), "the stage was retried"
    assert (
        saved.load(output / "model.keras").count_params() == saved.load(tmp_path / "one" / "model.keras").count_params()
    )
    two = json.loads((output / "metrics.json").read_text())
    assert [entry["epoch"] for entry in two["history"]] == [0, 1, 2, 3]
    assert json.loads((output / "run.json").read_text())["config"]["workers"] == 2
    assert (output / "model.keras").is_file() and not backup.exists()
    assert abs(two["test"]["like"]["accuracy"] - one["test"]["like"]["accuracy"]) < 0.01
    best = {
        name: max(entry["val_ndcg@10"] for entry in document["history"]) for name, document in (("1", one), ("2", two))
    }
    assert abs(best["1"] - best["2"]) < 0.01, best
