"""sparkrec-submit (sparkrec/core/submit.py); the README's job lines run as written from a shell without the venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkrec.core import submit

from helpers import ML_SMALL, ROOT

PYTHON = "/venv/bin/python"
SPARK_SUBMIT = str(submit.spark_home() / "bin" / "spark-submit")
JOB = str(ROOT / "jobs" / "prepare.py")
PROFILES = ROOT / "conf" / "spark"


def test_a_job_without_options_runs_here_on_the_local_profile_with_this_python():
    """A --master after the job script is the job's argument, not spark-submit's; a stray SPARK_HOME is replaced."""
    argv, env = submit.command([JOB, "--input", "in", "--master", "x"], {"SPARK_HOME": "/opt/spark-3"}, PYTHON)
    assert argv == [
        SPARK_SUBMIT,
        "--properties-file",
        str(PROFILES / "local.conf"),
        JOB,
        "--input",
        "in",
        "--master",
        "x",
    ]
    assert env == {"SPARK_HOME": str(submit.spark_home()), "PYSPARK_DRIVER_PYTHON": PYTHON, "PYSPARK_PYTHON": PYTHON}


def test_a_local_master_given_uses_no_profile_and_keeps_a_python_the_shell_set():
    args = ["--conf", "spark.master=local[1]", "--verbose", JOB]
    argv, env = submit.command(args, {"PYSPARK_PYTHON": "/other/python"}, PYTHON)
    assert argv == [SPARK_SUBMIT, *args]
    assert env["PYSPARK_PYTHON"] == "/other/python" and env["PYSPARK_DRIVER_PYTHON"] == PYTHON


def test_standalone_client_mode_sets_the_driver_python_only():
    """docs/cluster.md: executors run ./environment/bin/python (or the workers' python3), the driver this one."""
    args = ["--properties-file", str(PROFILES / "standalone.conf"), "--master", "spark://host:7077", JOB]
    argv, env = submit.command(args, {"PATH": "/usr/bin"}, PYTHON)
    assert argv == [SPARK_SUBMIT, *args]
    assert env == {"PATH": "/usr/bin", "SPARK_HOME": str(submit.spark_home()), "PYSPARK_DRIVER_PYTHON": PYTHON}


@pytest.mark.parametrize(
    "args",
    [
        ["--properties-file", str(PROFILES / "yarn.conf"), JOB],
        [f"--properties-file={PROFILES / 'k8s.conf'}", "--master", "k8s://https://api:6443", JOB],
        ["--master", "yarn", "--deploy-mode", "cluster", JOB],
    ],
)
def test_cluster_mode_leaves_python_to_the_profile(args):
    """The driver runs on the cluster: a path of this machine would be wrong there."""
    argv, env = submit.command(args, {}, PYTHON)
    assert argv == [SPARK_SUBMIT, *args]
    assert env == {"SPARK_HOME": str(submit.spark_home())}


def readme_job_lines() -> list[str]:
    """The commands of the code block under README.md's "Running the jobs", continuation lines kept."""
    section = (ROOT / "README.md").read_text().split("\n## Running the jobs\n", 1)[1]
    block = section.split("\n```\n", 2)[1]
    commands, current = [], ""
    for line in block.splitlines():
        current += line + "\n"
        if not line.endswith("\\"):
            commands.append(current.rstrip("\n"))
            current = ""
    return commands


@pytest.mark.slow
def test_the_readme_job_lines_run_as_written_from_a_shell_without_the_venv(ml_small, tmp_path):
    """From a stand-in project root (the repository's .venv, jobs and conf, its own data/, the README's
    ../shared/data), with PATH=/usr/bin:/bin and no SPARK_HOME, PYSPARK_PYTHON or VIRTUAL_ENV."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the README's lines run .venv/bin/...; these tests run in another environment")
    root = tmp_path / "project"
    root.mkdir()
    for name in (".venv", "jobs", "conf"):
        (root / name).symlink_to(ROOT / name)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(ML_SMALL.parent)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        **{key: os.environ[key] for key in ("JAVA_HOME", "LANG", "TMPDIR") if key in os.environ},
    }
    commands = readme_job_lines()
    assert [c.split()[1] for c in commands] == [
        f"jobs/{job}.py" for job in ("generate", "prepare", "train", "score", "evaluate")
    ]
    for command in commands:
        result = subprocess.run(
            ["/bin/bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=1200
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        assert "oneDNN" not in result.stdout + result.stderr, result.stdout + result.stderr
    for output in (
        "synth/ratings.csv",
        "ml-small/manifest.json",
        "ml-small-model/model.keras",
        "ml-small-scores/manifest.json",
        "ml-small-evaluation/report.md",
    ):
        assert (root / "data" / output).is_file(), output
