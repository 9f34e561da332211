"""The jobs' console (sparkrec/core/console.py): library noise silenced at its source, back with --verbose."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from helpers import ROOT, TINY_TRAIN, load_job

# Each job's required arguments: --verbose is parsed beside them.
REQUIRED = {
    "generate": ["--output", "o"],
    "prepare": ["--input", "i", "--output", "o"],
    "train": ["--data", "d", "--output", "o"],
    "score": ["--data", "d", "--model", "m", "--output", "o"],
    "evaluate": ["--data", "d", "--model", "m", "--output", "o"],
}
# TensorFlow's C++ log: absl's notice, the oneDNN banner, the CPU feature line, any absl-format line.
TF_LOG = re.compile(r"cpu_feature_guard|oneDNN|absl::InitializeLog|^[IWEF]0000 \d", re.MULTILINE)
PYTHON_WARNINGS = re.compile(r"FutureWarning|DeprecationWarning")

FAKE_TENSORFLOW = """
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1796496683.402398    6887 port.cc:153] oneDNN custom operations are on.\\n")
os.write(2, b"E0000 00:00:1796496693.667433    6887 node_def_util.cc:682] NodeDef mentions attribute\\n")
os.write(2, b"not a log line\\n")
os.write(2, b"F0000 00:00:1796496693.700000    6887 cpu_feature_guard.cc:42] compiled to use AVX\\n")
os.abort()
"""


@pytest.mark.parametrize("job", list(REQUIRED))
def test_every_job_takes_verbose(job):
    module = load_job(job)
    assert module.parse_args(REQUIRED[job]).verbose is False
    assert module.parse_args([*REQUIRED[job], "--verbose"]).verbose is True


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        ("3", ["not a log line", "F0000"]),
        ("2", ["E0000", "not a log line", "F0000"]),
        ("0", ["WARNING: All log messages", "I0000", "E0000", "not a log line", "F0000"]),
    ],
)
def test_tensorflow_loading_lines_below_the_level_are_dropped_and_a_crash_still_shows(tmp_path, level, kept):
    """A stand-in tensorflow module logs as TensorFlow does while loading, then dies as a failed CPU check does."""
    (tmp_path / "tensorflow.py").write_text(FAKE_TENSORFLOW)
    result = subprocess.run(
        [sys.executable, "-c", "from sparkrec.core import console; console.import_tensorflow()"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "TF_CPP_MIN_LOG_LEVEL": level},
    )
    assert result.returncode == -signal.SIGABRT
    lines = result.stderr.splitlines()
    assert len(lines) == len(kept) and all(line.startswith(start) for line, start in zip(lines, kept)), lines


@pytest.mark.slow
def test_train_prints_its_progress_and_no_library_noise_unless_verbose(prepared_small, tmp_path):
    """The noisiest job, run as a user runs it; DeprecationWarnings shown, as under pytest or python -W default."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONWARNINGS"] = "default"
    command = [
        sys.executable,
        str(ROOT / "jobs" / "train.py"),
        "--data",
        str(prepared_small),
        *TINY_TRAIN,
        "--set",
        "epochs=1",
        "--set",
        "keras_verbose=2",
    ]
    runs = {}
    for mode in ("quiet", "verbose"):
        flags = ["--verbose"] if mode == "verbose" else []
        runs[mode] = subprocess.run(
            [*command, "--output", str(tmp_path / mode), *flags], capture_output=True, text=True, env=env, timeout=600
        )
        assert runs[mode].returncode == 0, runs[mode].stderr[-3000:]
    quiet = runs["quiet"]
    assert not TF_LOG.search(quiet.stderr), quiet.stderr
    assert not PYTHON_WARNINGS.search(quiet.stderr), quiet.stderr
    assert re.search(r"INFO sparkrec\.train: model deep: [\d,]+ parameters", quiet.stderr)
    assert re.search(r"^\d+/\d+ - \d+s - ", quiet.stdout, re.MULTILINE), quiet.stdout  # Keras' epoch line
    assert quiet.stdout.splitlines()[-1].startswith("train: deep model, 1 epochs")
    assert TF_LOG.search(runs["verbose"].stderr), runs["verbose"].stderr


@pytest.mark.slow
def test_prepare_under_spark_submit_prints_no_library_warnings(submitted_prepare):
    """Spark's Python workers run none of the driver's filters: on the legacy stack each worker's petastorm
    warned about pyarrow.localfs while materialize_dataset counted row groups (make test-legacy runs this)."""
    output = submitted_prepare.console
    assert not PYTHON_WARNINGS.search(output), output
    assert "prepare: " in output or "prepared " in output, output
