"""The jobs' console: their progress lines and summaries, without the libraries' chatter around them.

Every job's main calls `quiet(args.verbose, ...)` before TensorFlow, petastorm or Spark start; the
`--verbose` flag (`add_argument`) leaves every library's logging as the library sets it, for
debugging. What quiet mode silences, each at its source:

- TensorFlow's C++ log, by TF_CPP_MIN_LOG_LEVEL=3, which TensorFlow reads once, when it loads;
  so `quiet` sets it, in this process and (`spark_settings`) in Spark's Python workers, before
  TensorFlow is imported. 3 drops ERROR lines as well as INFO and WARNING: on our paths the one
  ERROR line is tf.data's `NodeDef mentions attribute use_unbounded_threadpool ...`, which op
  determinism (train's `deterministic: true`) causes and which changes nothing; an error that
  stops TensorFlow reaches Python as an exception, and FATAL lines are never dropped. A level
  the user exported is kept.
- The lines TensorFlow prints while loading, before it applies that level (absl's "All log
  messages before absl::InitializeLog() is called" notice, the oneDNN banner), by
  `import_tensorflow`.
- Python warnings of the libraries, each filtered by the module that raises it (`_WARNINGS`),
  and TensorFlow's retracing warning, by message, on its logger. Spark's Python workers run
  none of this process's filters: `spark_settings` hands them `_WORKER_WARNINGS`.

Spark's JVM logging is conf/spark/log4j2.properties's in both modes: spark-submit configures
the JVM before the job reads its arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LOG_LEVEL = "3"

# (category, message regex, module regex) of each library warning the jobs cannot act on.
_WARNINGS = (
    # petastorm 0.13.1 on the legacy stack (pyarrow 14), about its own use of pyarrow's
    # legacy dataset API, from its reader threads and from materialize_dataset.
    (FutureWarning, "", r"petastorm\."),
    # make_batch_reader on a store with a Unischema: batches are what the training feed wants.
    (UserWarning, "Please use make_reader", r"petastorm\."),
    # Keras converts TensorFlow tensors with np.array(), whose __array__ lacks numpy 2's copy
    # argument; shown where DeprecationWarnings are (pytest, python -W default).
    (
        DeprecationWarning,
        r"__array__ implementation doesn't accept a copy keyword",
        r"keras\.src\.backend\.tensorflow\.core",
    ),
)

# PYTHONWARNINGS entries (module names literal) for Spark's Python workers: on the legacy stack,
# petastorm's materialize_dataset counts row groups in them, and each worker's petastorm warns
# about pyarrow.localfs (eight lines per split written).
_WORKER_WARNINGS = ("ignore::FutureWarning:petastorm.fs_utils",)
# What `quiet` hands the Spark Python workers' environment (`spark_settings`); empty when verbose.
_worker_environment: dict[str, str] = {}

_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Run by `sys.executable -I -S -c` between the import and stderr: copies stdin to stderr a line
# at a time, but for the lines that match the regex argv[1].
_FILTER = """
import re, sys
drop = re.compile(sys.argv[1].encode())
for text in sys.stdin.buffer:
    if not drop.match(text):
        sys.stderr.buffer.write(text)
        sys.stderr.buffer.flush()
"""


def add_argument(parser: argparse.ArgumentParser) -> None:
    """The `--verbose` flag every job accepts."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="keep the libraries' logging (TensorFlow's C++ log, petastorm and Keras warnings) as they set it",
    )


def quiet(verbose: bool, tensorflow: bool = False) -> None:
    """Silence the libraries' noise for the rest of this process, unless `verbose`.

    `tensorflow`: the job runs TensorFlow in this process; it is imported here, where the lines
    it prints while loading can be dropped (`import_tensorflow`).
    """
    if verbose:
        return
    os.environ.setdefault(TF_LOG_LEVEL, QUIET_TF_LOG_LEVEL)
    warnings_setting = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), *_WORKER_WARNINGS)))
    _worker_environment.update({TF_LOG_LEVEL: os.environ[TF_LOG_LEVEL], "PYTHONWARNINGS": warnings_setting})
    for category, message, module in _WARNINGS:
        warnings.filterwarnings("ignore", message, category, module)
    logging.getLogger("tensorflow").addFilter(_not_retracing)
    if tensorflow:
        import_tensorflow()


def _not_retracing(record: logging.LogRecord) -> bool:
    # Scoring's factorization and evaluate's predictions each build a small Keras model and run
    # it once; TensorFlow counts the traces of their predict functions together and warns.
    return "triggered tf.function retracing" not in record.getMessage()


def spark_settings() -> dict[str, str]:
    """Spark properties that hand `quiet`'s TensorFlow log level and warnings filters to the Python workers."""
    return {f"spark.executorEnv.{name}": value for name, value in _worker_environment.items()}


def import_tensorflow() -> ModuleType:
    """`import tensorflow`, without the log lines it prints while loading below TF_CPP_MIN_LOG_LEVEL.

    TensorFlow applies the level only once loaded; the lines it logs before (through absl, not
    yet initialised) reach stderr whatever the level. A filter process between the import and
    stderr drops them and passes every other line on as it comes, so a crash during the import
    still shows its message.
    """
    level = os.environ.get(TF_LOG_LEVEL, "")
    if "tensorflow" in sys.modules or level not in ("1", "2", "3"):
        import tensorflow

        return tensorflow
    # absl's notice, and lines of TensorFlow's C++ log (severity, date, time, thread, file:line)
    # of a severity below the level.
    below = rf"{re.escape(_ABSL_NOTICE)}$|[{'IWE'[: int(level)]}]\d{{4}} [\d:.]+ +\d+ \S+:\d+\] "
    with _stderr_through([sys.executable, "-I", "-S", "-c", _FILTER, below]):
        import tensorflow
    return tensorflow


@contextmanager
def _stderr_through(command: list[str]) -> Iterator[None]:
    """File descriptor 2 (C libraries' stderr as well as Python's) piped into `command`'s stdin."""
    sys.stderr.flush()
    stderr = os.dup(2)
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=stderr)
        os.dup2(process.stdin.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(stderr, 2)
            process.stdin.close()
            process.wait()
    finally:
        os.close(stderr)
