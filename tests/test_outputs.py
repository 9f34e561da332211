"""Data safety: every job replaces only what it wrote, never an input or a directory holding one,
one run at a time per output, and a refused run touches nothing.

The staged commit is tested directly on local directories (no Spark); each job is then
driven through its real entry point on every refusal that applies to it, and the tree
around it is hashed before and after.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparkrec.core import outputs
from sparkrec.core.outputs import OutputError, staged_output

from helpers import ROOT, load_job, run_job, tree_digest


def user_files(directory: Path) -> Path:
    """A directory of someone's own files."""
    (directory / "notes").mkdir(parents=True)
    (directory / "notes" / "todo.txt").write_text("keep me\n")
    (directory / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    return directory


def commit(output: Path, job: str = "prepare", content: str = "new", **options) -> None:
    with staged_output(None, str(output), job, **options) as staging:
        Path(staging, "content.txt").write_text(content)


def lock_record(**fields) -> str:
    record = {
        "job": "prepare",
        "run_id": "other",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_unix": int(time.time()),
        **fields,
    }
    return json.dumps(record)


def make_stale(path: Path) -> None:
    """Age a lock's heartbeat past the stale limit."""
    when = time.time() - outputs.STALE_SECONDS - 60
    os.utime(path, (when, when))


# --- the staged commit ----------------------------------------------------------------------


def test_a_committed_output_is_marked_and_leaves_no_sibling(tmp_path):
    commit(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [outputs.MARKER, "content.txt"]
    marker = json.loads((tmp_path / "out" / outputs.MARKER).read_text())
    assert (marker["job"], marker["pid"], marker["force"]) == ("prepare", os.getpid(), False)
    assert outputs.owner(None, str(tmp_path / "out")) == "prepare"


def test_the_same_jobs_output_and_an_empty_directory_are_replaced(tmp_path):
    commit(tmp_path / "out", content="first")
    commit(tmp_path / "out", content="second")
    assert (tmp_path / "out" / "content.txt").read_text() == "second"
    (tmp_path / "empty").mkdir()
    commit(tmp_path / "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


@pytest.mark.parametrize(
    "make, reason",
    [
        (
            lambda p: user_files(p),
            r"it is not a prepare output \(no _sparkrec.json naming prepare\) and holds other files",
        ),
        (lambda p: commit(p, job="score"), "it is the output of the score job, not of prepare"),
        (lambda p: p.write_text("a file\n"), "it is a file, not a directory"),
    ],
    ids=["user-files", "other-job", "file"],
)
def test_anything_else_is_refused_untouched_unless_forced(tmp_path, make, reason):
    output = tmp_path / "out"
    make(output)
    before = tree_digest(tmp_path)
    with pytest.raises(OutputError, match=rf"^refusing to replace {output}: {reason}; --force replaces it$"):
        commit(output)
    assert tree_digest(tmp_path) == before
    commit(output, force=True)
    assert (output / "content.txt").read_text() == "new"
    assert json.loads((output / outputs.MARKER).read_text())["force"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    "output, data, relation",
    [
        ("ml", "ml", "is"),
        ("", "ml", "contains"),
        ("ml/prepared", "ml", "is inside"),
        ("ml-link", "ml", "is"),  # a symbolic link to the input
        ("ml/../ml", "ml", "is"),
    ],
    ids=["same", "parent", "inside", "symlink", "unnormalized"],
)
def test_an_input_or_a_directory_around_it_is_refused_even_forced(tmp_path, output, data, relation):
    root = tmp_path / "root"
    user_files(root / "ml")
    (root / "ml-link").symlink_to(root / "ml")
    target = str(root / output) if output else str(root)
    before = tree_digest(tmp_path)
    for force in (False, True):
        with pytest.raises(
            OutputError,
            match=rf"^refusing to write {re.escape(target)}: it {relation} "
            rf"the --data directory {re.escape(str(root / data))}$",
        ):
            commit(Path(target), inputs={"--data": str(root / data)}, force=force)
    assert tree_digest(tmp_path) == before


def test_a_sibling_of_the_output_may_not_be_an_input(tmp_path):
    user_files(tmp_path / "out.staging")
    before = tree_digest(tmp_path)
    with pytest.raises(OutputError, match=r"out.staging: it is the --input directory"):
        commit(tmp_path / "out", inputs={"--input": str(tmp_path / "out.staging")}, force=True)
    assert tree_digest(tmp_path) == before


def test_the_working_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "project" / "work"
    user_files(work)
    monkeypatch.chdir(work)
    before = tree_digest(tmp_path)
    for output in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="it holds the working directory"):
            commit(Path(output), force=True)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("suffix", [outputs.STAGING_SUFFIX, outputs.PREVIOUS_SUFFIX, ".backup"])
def test_a_foreign_sibling_is_refused_even_forced(tmp_path, suffix):
    commit(tmp_path / "out", content="committed")
    user_files(tmp_path / f"out{suffix}")
    before = tree_digest(tmp_path)
    with pytest.raises(
        OutputError,
        match=rf"^refusing to touch {tmp_path}/out{re.escape(suffix)}: it is not a "
        r"prepare output .* move it away$",
    ):
        commit(tmp_path / "out", extra=(".backup",), force=True)
    assert tree_digest(tmp_path) == before


def test_a_failed_run_keeps_the_output_and_its_staging_for_the_next_run_to_clear(tmp_path):
    commit(tmp_path / "out", content="committed")
    with pytest.raises(RuntimeError, match="boom"):
        with staged_output(None, str(tmp_path / "out"), "prepare") as staging:
            Path(staging, "quarantine.txt").write_text("bad rows")
            raise RuntimeError("boom")
    assert (tmp_path / "out" / "content.txt").read_text() == "committed"
    assert (tmp_path / "out.staging" / "quarantine.txt").read_text() == "bad rows"
    assert not (tmp_path / "out.lock").exists()
    commit(tmp_path / "out", content="second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_run_that_fails_before_writing_or_asks_for_it_leaves_no_staging(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_output(None, str(tmp_path / "out"), "train"):
            raise RuntimeError("bad input")
    with pytest.raises(RuntimeError):
        with staged_output(None, str(tmp_path / "gen"), "generate", keep_failed=False) as staging:
            Path(staging, "ratings.csv").write_text("partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_extra_siblings_are_deleted_after_the_commit(tmp_path):
    outputs.mark(None, str(tmp_path / "model.backup"), "train")
    commit(tmp_path / "model", job="train", extra=(".backup",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("output_there", [True, False])
def test_an_interrupted_swap_is_finished_or_undone(tmp_path, output_there):
    commit(tmp_path / "out", content="old")
    (tmp_path / "out").rename(tmp_path / "out.previous")
    if output_there:
        commit(tmp_path / "elsewhere", content="new")
        (tmp_path / "elsewhere").rename(tmp_path / "out")
    outputs.recover(None, str(tmp_path / "out"))
    assert (tmp_path / "out" / "content.txt").read_text() == ("new" if output_there else "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- the lock -------------------------------------------------------------------------------


def test_a_live_holder_makes_a_second_run_fail_at_once_naming_it(tmp_path):
    commit(tmp_path / "out", content="committed")
    (tmp_path / "out.lock").write_text(lock_record(job="prepare", pid=os.getpid()))
    before = tree_digest(tmp_path)
    message = (
        rf"^{tmp_path}/out is being written by a prepare run \(host {re.escape(socket.gethostname())}, "
        rf"pid {os.getpid()}, started [0-9: -]+\): its lock is {tmp_path}/out.lock$"
    )
    with pytest.raises(OutputError, match=message):
        commit(tmp_path / "out", force=True)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    "content, holder",
    [(lock_record(host="elsewhere.example", pid=1), "a prepare run"), ("", "an unknown holder")],
    ids=["other-host", "empty-file"],
)
def test_a_lock_that_cannot_be_judged_by_its_process_is_live_until_its_heartbeat_stops(tmp_path, content, holder):
    """Another host's process, or a lock file a crash left empty, is stale only once not refreshed for long."""
    lock = tmp_path / "out.lock"
    lock.write_text(content)
    with pytest.raises(OutputError, match=f"is being written by {holder}"):
        commit(tmp_path / "out")
    make_stale(lock)
    commit(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "out.lock").write_text(lock_record(pid=int(finished.stdout)))
    commit(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_lock_of_a_killed_process_not_yet_reaped_is_taken_over(tmp_path):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.05)
    try:
        (tmp_path / "out.lock").write_text(lock_record(pid=zombie.pid))
        commit(tmp_path / "out")
    finally:
        zombie.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_taking_over_puts_back_a_lock_that_a_newer_run_took_first(tmp_path):
    """Two runs judged the same lock stale; the first replaced it: the second must not remove the new lock."""
    path = tmp_path / "out.lock"
    path.write_text(lock_record(run_id="newer"))
    late = outputs.Lock(None, str(path), {"run_id": "late"})
    late._take_over(judged={"run_id": "stale-one"})
    assert json.loads(path.read_text())["run_id"] == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.lock"]


@pytest.mark.parametrize(
    "make", [lambda p: p.write_text("my own notes\n"), lambda p: user_files(p)], ids=["file", "directory"]
)
def test_a_file_named_like_the_lock_that_is_not_one_is_kept(tmp_path, make):
    make(tmp_path / "out.lock")
    make_stale(tmp_path / "out.lock")
    before = tree_digest(tmp_path)
    with pytest.raises(
        OutputError,
        match=rf"^refusing to touch {tmp_path}/out.lock: it is (not a sparkrec lock "
        r"file|a directory, not a sparkrec lock); move it away$",
    ):
        commit(tmp_path / "out", force=True)
    assert tree_digest(tmp_path) == before


def test_a_run_whose_lock_was_taken_over_does_not_commit(tmp_path):
    commit(tmp_path / "out", content="committed")
    with pytest.raises(
        OutputError,
        match=rf"out.lock was taken over by another run: {tmp_path}/out not replaced, "
        rf"this run's output is left in {tmp_path}/out.staging$",
    ):
        with staged_output(None, str(tmp_path / "out"), "prepare") as staging:
            Path(staging, "content.txt").write_text("late")
            (tmp_path / "out.lock").write_text(lock_record(run_id="the-new-holder"))
    assert (tmp_path / "out" / "content.txt").read_text() == "committed"
    assert (tmp_path / "out.staging" / "content.txt").read_text() == "late"
    assert json.loads((tmp_path / "out.lock").read_text())["run_id"] == "the-new-holder", "not ours to release"


def test_the_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "HEARTBEAT_SECONDS", 0.05)
    with staged_output(None, str(tmp_path / "out"), "prepare"):
        lock = tmp_path / "out.lock"
        os.utime(lock, (0, 0))
        deadline = time.monotonic() + 10
        while lock.stat().st_mtime == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock.stat().st_mtime > time.time() - 60


@pytest.mark.parametrize(
    "output, other, relation",
    [
        ("hdfs://nn:8020/data/ml", "hdfs://nn:8020/data/ml", "is"),
        ("hdfs://nn:8020/data", "hdfs://nn:8020/data/ml", "contains"),
        ("hdfs://nn:8020/data/ml/out", "hdfs://nn:8020/data/ml", "is inside"),
        ("hdfs://nn:8020/data/ml-out", "hdfs://nn:8020/data/ml", None),
        ("hdfs://other:8020/data/ml", "hdfs://nn:8020/data/ml", None),
        ("s3a://bucket/ml", "hdfs://nn:8020/ml", None),
    ],
)
def test_overlap_compares_whole_components_of_qualified_uris(output, other, relation):
    assert outputs._relation(output, other) == relation


# --- every job, through its entry point -------------------------------------------------------

# argv of each job, given its main input directory and its output; score and evaluate also read a model.
JOB_ARGS = {
    "prepare": lambda data, model, out: ["--input", data, "--output", out],
    "train": lambda data, model, out: ["--data", data, "--output", out, "--set", "epochs=1"],
    "score": lambda data, model, out: ["--data", data, "--model", model, "--output", out],
    "evaluate": lambda data, model, out: ["--data", data, "--model", model, "--output", out],
    "generate": lambda data, model, out: ["--output", out, "--users", "1"],
}
INPUT_FLAG = {"prepare": "--input", "train": "--data", "score": "--data", "evaluate": "--data"}


@pytest.fixture
def world(tmp_path) -> Path:
    """A user's folder: a data directory, a model directory and a folder of their own files."""
    user_files(tmp_path / "world" / "data")
    (tmp_path / "world" / "model").mkdir()
    (tmp_path / "world" / "model" / "model.keras").write_bytes(b"PK not really")
    user_files(tmp_path / "world" / "mine")
    return tmp_path / "world"


def refusals(job: str):
    """(case, output relative to the world, extra argv, message pattern) for each refusal that applies to `job`."""
    cases = [
        ("foreign", "mine", [], rf"refusing to replace {{world}}/mine: it is not a {job} output"),
        (
            "other-job",
            "done",
            [],
            rf"refusing to replace {{world}}/done: it is the output of the "
            rf"{'score' if job != 'score' else 'prepare'} job",
        ),
    ]
    if job in INPUT_FLAG:
        flag = INPUT_FLAG[job]
        cases += [
            ("is-input", "data", ["--force"], rf"refusing to write {{world}}/data: it is the {flag} directory"),
            ("parent", "", ["--force"], rf"refusing to write {{world}}: it contains the {flag} directory"),
            ("inside", "data/out", ["--force"], rf"refusing to write {{world}}/data/out: it is inside the {flag}"),
        ]
    if job in ("score", "evaluate"):
        cases.append(
            ("is-model", "model", ["--force"], r"refusing to write {world}/model: it is the --model directory")
        )
    return [(job, *case) for case in cases]


@pytest.mark.parametrize(
    "job, case, output, extra, message",
    [c for job in JOB_ARGS for c in refusals(job)],
    ids=[f"{job}-{c[1]}" for job in JOB_ARGS for c in refusals(job)],
)
def test_every_job_refuses_before_any_work_and_touches_nothing(spark, world, job, case, output, extra, message):
    other = "score" if job != "score" else "prepare"
    with staged_output(None, str(world / "done"), other) as staging:
        Path(staging, "result.txt").write_text("someone's result")
    target = str(world / output) if output else str(world)
    before = tree_digest(world.parent)
    with pytest.raises(OutputError, match="^" + message.format(world=world)):
        load_job(job).main(JOB_ARGS[job](str(world / "data"), str(world / "model"), target) + extra)
    assert tree_digest(world.parent) == before


@pytest.mark.slow
@pytest.mark.parametrize("job", list(JOB_ARGS))
def test_every_job_exits_with_one_line_and_code_1_on_a_refused_output(world, job):
    before = tree_digest(world.parent)
    result = run_job(
        job,
        *JOB_ARGS[job](str(world / "data"), str(world / "model"), str(world / "mine")),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"{job}: refusing to replace {world}/mine: it is not a {job} output (no _sparkrec.json naming {job}) "
        "and holds other files; --force replaces it"
    )
    assert tree_digest(world.parent) == before


@pytest.mark.slow
def test_two_prepares_into_one_output_one_fails_at_once_and_one_commits(tmp_path):
    raw = tmp_path / "raw"
    load_job("generate").main(["--output", str(raw), "--users", "40", "--seed", "3"])
    output = tmp_path / "out"
    command = [
        sys.executable,
        str(ROOT / "jobs" / "prepare.py"),
        "--input",
        str(raw),
        "--output",
        str(output),
        "--set",
        "sample_users=all",
        "--set",
        "figures=false",
    ]
    # Spark's default of 200 shuffle partitions makes every shuffle of these 40 users' rows 200 tasks:
    # the test session's 4 (conftest.py) take a fraction of the time.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYSPARK_SUBMIT_ARGS": "--conf spark.sql.shuffle.partitions=4 pyspark-shell",
    }
    runs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        for _ in range(2)
    ]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 1]
    _, loser = next(result for result in results if result[0] == 1)
    assert re.fullmatch(
        rf"prepare: {output} is being written by a prepare run \(host .+, pid \d+, started "
        rf"[0-9: -]+\): its lock is {output}.lock",
        loser.strip().splitlines()[-1],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["rows"]["sampled_users"] == 40 and manifest["rows"]["train"] > 0
    assert outputs.owner(None, str(output)) == "prepare"
