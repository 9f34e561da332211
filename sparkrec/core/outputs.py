"""Job outputs: who owns a directory, what an output must not overlap, the lock, the staged commit.

Every job writes its OUTPUT through `staged_output`, which

1. refuses, touching nothing, an OUTPUT that is an input, inside one or above
   one (`--input`, `--data`, `--model`; compared as qualified, normalized
   paths, local symbolic links resolved), that is the working directory or
   above it, or that exists and is neither empty nor a committed output of the
   same job. `--force` lifts only the last rule. OUTPUT's siblings the job
   writes (`.staging`, `.previous`, `.lock`, and training's `.backup`) must be
   missing or the same job's;
2. takes OUTPUT.lock: created exclusively, holding the run's host, pid, start
   time and run id, refreshed every HEARTBEAT_SECONDS. A second run fails at
   once naming the holder; a lock whose holder is gone (same host, process not
   running) or silent for STALE_SECONDS is taken over;
3. finishes a swap a crash interrupted, clears the job's own failed staging,
   creates OUTPUT.staging marked with MARKER and yields it;
4. after the job's work, checks it still holds the lock and swaps the staging
   directory in by two renames (atomic each on local disks and HDFS;
   `recover` repairs a crash between them; on object stores rename is a copy).

MARKER (`_sparkrec.json` at the top of every output, ignored by Spark's
readers for its leading underscore) names the job that wrote the directory:
the only thing that makes a directory replaceable without --force.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from sparkrec.core import storage
from sparkrec.core.errors import SparkrecError
from sparkrec.core.runinfo import get_logger, library_versions
from sparkrec.core.storage import Spark

MARKER = "_sparkrec.json"
STAGING_SUFFIX = ".staging"
PREVIOUS_SUFFIX = ".previous"
LOCK_SUFFIX = ".lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0
log = get_logger("outputs")


class OutputError(SparkrecError):
    """An output directory the job must not write; the message is one line."""


def add_arguments(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The `--output` / `--force` pair every job takes."""
    parser.add_argument("--output", required=True, help=help_text)
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace OUTPUT even when it is not this job's output "
        "(never an input, a directory above one or inside one)",
    )


# --- ownership -------------------------------------------------------------


def owner(spark: Spark, directory: str) -> str | None:
    """The job named by a directory's marker; None when it has no readable marker."""
    path = f"{directory}/{MARKER}"
    if not storage.exists(spark, path):
        return None
    try:
        job = json.loads(storage.read_text(spark, path)).get("job")
    except (ValueError, AttributeError, OSError):
        return None
    return job if isinstance(job, str) else None


def mark(spark: Spark, directory: str, job: str, run: dict | None = None) -> None:
    """Create `directory` (if need be) and claim it for `job`."""
    storage.mkdirs(spark, directory)
    record = {"job": job, **(run or {}), "sparkrec": library_versions().get("sparkrec")}
    storage.write_text(spark, f"{directory}/{MARKER}", json.dumps(record, indent=2) + "\n")


def _foreign(spark: Spark, path: str, job: str) -> str | None:
    """Why `path` is not `job`'s to replace: None when it is missing, an empty directory or marked by `job`."""
    if not storage.exists(spark, path):
        return None
    if not storage.is_dir(spark, path):
        return "it is a file, not a directory"
    if not storage.children(spark, path):
        return None
    found = owner(spark, path)
    if found == job:
        return None
    if found is not None:
        return f"it is the output of the {found} job, not of {job}"
    return f"it is not a {job} output (no {MARKER} naming {job}) and holds other files"


# --- overlap with the inputs -----------------------------------------------


def _relation(output: str, other: str) -> str | None:
    """How two canonical paths overlap: 'is', 'contains', 'is inside', or None."""
    if output == other:
        return "is"
    if other.startswith(output.rstrip("/") + "/"):
        return "contains"
    if output.startswith(other.rstrip("/") + "/"):
        return "is inside"
    return None


def _overlap(spark: Spark, path: str, inputs: Mapping[str, str]) -> str | None:
    """Why writing (or replacing) `path` would touch an input or the working directory; None if it would not."""
    here = storage.canonical(spark, path)
    for flag, value in inputs.items():
        relation = _relation(here, storage.canonical(spark, value))
        if relation is not None:
            return f"it {relation} the {flag} directory {value}"
    if storage.is_local(path) and _relation(here, os.path.realpath(os.getcwd())) in ("is", "contains"):
        return "it holds the working directory"
    return None


# --- the lock --------------------------------------------------------------


def _running(pid: int) -> bool:
    """Is a process with this id alive on this host (a zombie, killed but not reaped, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _foreign_lock(spark: Spark, path: str) -> str | None:
    """Why `path` is not a lock file of ours: None when it is missing, empty (a crash between
    creating and writing it) or a lock record."""
    try:
        if not storage.exists(spark, path):
            return None
        if storage.is_dir(spark, path):
            return "it is a directory, not a sparkrec lock"
        if storage.file_size(spark, path) == 0:
            return None
        record = json.loads(storage.read_text(spark, path))
    except FileNotFoundError:
        return None  # released while we looked
    except (ValueError, OSError):
        record = None
    if isinstance(record, dict) and record.get("run_id"):
        return None
    return "it is not a sparkrec lock file"


def _describe(holder: dict) -> str:
    if not holder.get("run_id"):
        return "an unknown holder (the lock file is empty or unreadable)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_unix", 0)))
    return f"a {holder.get('job')} run (host {holder.get('host')}, pid {holder.get('pid')}, started {started})"


class Lock:
    """OUTPUT.lock, held by one run from before its checks until after its commit."""

    def __init__(self, spark: Spark, path: str, run: dict):
        self.spark, self.path, self.run = spark, path, run
        self.stopped = threading.Event()
        self.heartbeat = threading.Thread(target=self._beat, name="sparkrec-lock-heartbeat", daemon=True)

    def holder(self, path: str | None = None) -> dict:
        try:
            record = json.loads(storage.read_text(self.spark, path or self.path))
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def stale(self, holder: dict) -> bool:
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _running(pid):
            return True
        return time.time() - storage.modified_unix(self.spark, self.path) > STALE_SECONDS

    def acquire(self, output: str) -> None:
        text = json.dumps(self.run, indent=2) + "\n"
        for _ in range(3):
            if storage.create_exclusive(self.spark, self.path, text):
                self.heartbeat.start()
                return
            try:
                holder = self.holder()
                stale = self.stale(holder)
            except FileNotFoundError:
                continue  # released while we looked: try again
            if not stale:
                raise OutputError(f"{output} is being written by {_describe(holder)}: its lock is {self.path}")
            log.warning("taking over the stale lock %s of %s", self.path, _describe(holder))
            self._take_over(holder)
        raise OutputError(f"could not take the lock {self.path}: other runs kept taking it")

    def _take_over(self, judged: dict) -> None:
        """Move the stale lock aside and check it was the one judged stale, not a newer run's."""
        aside = f"{self.path}.stale-{self.run['run_id']}"
        try:
            storage.rename(self.spark, self.path, aside)
        except OSError:
            return
        if self.holder(aside) == judged:
            storage.delete(self.spark, aside)
            return
        try:
            storage.rename(self.spark, aside, self.path)
        except OSError:
            raise OutputError(f"lost a race for the lock {self.path}; {aside} holds another run's lock") from None

    def held(self) -> bool:
        try:
            return self.holder().get("run_id") == self.run["run_id"]
        except OSError:
            return False

    def _beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                storage.touch(self.spark, self.path)
            except Exception:  # the lock is gone or unreachable; the commit's check will say so
                return

    def release(self) -> None:
        self.stopped.set()
        if self.heartbeat.is_alive():
            self.heartbeat.join()
        if self.held():
            storage.delete(self.spark, self.path)


# --- the staged commit -----------------------------------------------------


def siblings(output: str, suffixes: Sequence[str] = ()) -> dict[str, str]:
    """The paths beside OUTPUT a job writes, by suffix."""
    return {suffix: output + suffix for suffix in (STAGING_SUFFIX, PREVIOUS_SUFFIX, LOCK_SUFFIX, *suffixes)}


def check(
    spark: Spark, output: str, job: str, inputs: Mapping[str, str], force: bool = False, extra: Sequence[str] = ()
) -> None:
    """Every refusal, touching nothing: raise OutputError naming the directory and why."""
    paths = siblings(output, extra)
    for path in (output, *paths.values()):
        reason = _overlap(spark, path, inputs)
        if reason is not None:
            raise OutputError(f"refusing to write {path}: {reason}")
    reason = _foreign(spark, output, job)
    if reason is not None and not force:
        raise OutputError(f"refusing to replace {output}: {reason}; --force replaces it")
    for suffix, path in paths.items():
        reason = _foreign_lock(spark, path) if suffix == LOCK_SUFFIX else _foreign(spark, path, job)
        if reason is not None:
            raise OutputError(f"refusing to touch {path}: {reason}; move it away")


def recover(spark: Spark, output: str) -> None:
    """Finish or undo a commit that was interrupted between its two renames."""
    previous = output + PREVIOUS_SUFFIX
    if storage.exists(spark, previous):
        if storage.exists(spark, output):
            storage.delete(spark, previous)
        else:
            storage.rename(spark, previous, output)


@contextmanager
def staged_output(
    spark: Spark,
    output: str,
    job: str,
    inputs: Mapping[str, str] | None = None,
    force: bool = False,
    extra: Sequence[str] = (),
    keep_failed: bool = True,
) -> Iterator[str]:
    """Yield a fresh staging directory for `job`; when the block succeeds, swap it into `output`.

    `inputs` maps each input flag to its path; `extra` names further sibling
    suffixes the job writes itself: checked like the others, deleted after a
    successful commit, never created here. On an exception `output` is
    untouched; a staging directory the job wrote into is kept for inspection
    (the next run clears it) unless `keep_failed` is False.
    """
    output = output.rstrip("/") or "/"
    inputs = inputs or {}
    check(spark, output, job, inputs, force, extra)
    parent = output.rsplit("/", 1)[0] if "/" in output else "."
    storage.mkdirs(spark, parent or "/")
    run = {
        "job": job,
        "run_id": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_unix": int(time.time()),
        "force": force,
    }
    lock = Lock(spark, output + LOCK_SUFFIX, run)
    lock.acquire(output)
    staging = output + STAGING_SUFFIX
    try:
        check(spark, output, job, inputs, force, extra)  # again, now that no other run can change them
        recover(spark, output)
        storage.delete(spark, staging)
        mark(spark, staging, job, run)
        try:
            yield staging
        except BaseException:
            if not keep_failed or storage.children(spark, staging) == [MARKER]:
                storage.delete(spark, staging)
            raise
        if not lock.held():
            raise OutputError(
                f"{lock.path} was taken over by another run: {output} not replaced, "
                f"this run's output is left in {staging}"
            )
        previous = output + PREVIOUS_SUFFIX
        if storage.exists(spark, output):
            storage.rename(spark, output, previous)
        storage.rename(spark, staging, output)
        storage.delete(spark, previous)
        for suffix in extra:
            storage.delete(spark, output + suffix)
    finally:
        lock.release()
