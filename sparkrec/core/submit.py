"""sparkrec-submit: pyspark's spark-submit, run with this environment's Spark and Python from any shell.

    .venv/bin/sparkrec-submit [spark-submit options] jobs/JOB.py [job arguments]

pyspark's own `.venv/bin/spark-submit` finds Spark by running whatever `python3` the PATH gives
(or $PYSPARK_PYTHON), and Spark starts its Python workers with `python3` from the PATH: typed by
its path from a shell whose PATH lacks the venv, it fails with `/bin/spark-class: No such file or
directory`, or its workers lack our packages. This console script knows its interpreter, so it

- sets SPARK_HOME to the installed pyspark, whatever the shell holds (another Spark's JVM under
  this pyspark is a mismatch; to run another Spark, use that Spark's own spark-submit);
- sets PYSPARK_DRIVER_PYTHON, unless it is set, to this interpreter when the driver runs here
  (client deploy mode, the default), and PYSPARK_PYTHON, unless it is set, to this interpreter
  when the executors run here too (a `local` master): on a cluster, executors and cluster-mode
  drivers use the Python their profile or docs/cluster.md names;
- adds `--properties-file conf/spark/local.conf` (of the project holding the job script) when
  the options name neither a properties file nor a master: a job typed with no options runs on
  this machine with the project's local profile;

then runs pyspark's spark-submit with the arguments otherwise as given, in this process (its
exit status is the job's). Run from the project root: local.conf names log4j2.properties by a
path relative to it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# spark-submit's options that take no value; every other option takes one (`--opt value` or
# `--opt=value`), and the first argument that is neither is the application, whose own
# arguments follow it.
_SWITCHES = {"--help", "-h", "--supervise", "--usage-error", "--verbose", "-v", "--version"}
LOCAL_PROFILE = Path("conf") / "spark" / "local.conf"


def spark_home() -> Path:
    """The installed pyspark package's directory: a Spark home (bin/, jars/), found without importing pyspark."""
    return Path(importlib.util.find_spec("pyspark").submodule_search_locations[0])


def options(args: list[str]) -> tuple[dict[str, str], dict[str, str], str | None]:
    """spark-submit's options among `args` (the last of each name), its --conf properties, and the application."""
    named: dict[str, str] = {}
    properties: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            return named, properties, arg
        if arg in _SWITCHES:
            i += 1
            continue
        name, sep, value = arg.partition("=")
        if not sep:
            value = args[i + 1] if i + 1 < len(args) else ""
            i += 1
        i += 1
        if name in ("--conf", "-c"):
            key, _, setting = value.partition("=")
            properties[key.strip()] = setting.strip()
        else:
            named[name] = value
    return named, properties, None


def read_properties(path: Path) -> dict[str, str]:
    """A Spark properties file's settings (`key value`, `key=value` or `key: value`; # and ! comments)."""
    settings = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        for i, char in enumerate(line):
            if char in " \t=:":
                settings[line[:i]] = line[i + 1 :].strip(" \t=:")
                break
    return settings


def command(args: list[str], environ: dict[str, str], python: str) -> tuple[list[str], dict[str, str]]:
    """The spark-submit command line and environment that run `args` with the Python `python`."""
    named, properties, application = options(args)
    args = list(args)
    if "--properties-file" not in named and "--master" not in named and "spark.master" not in properties:
        profile = Path(application).resolve().parents[1] / LOCAL_PROFILE if application else None
        if profile is not None and profile.is_file():
            args = ["--properties-file", str(profile), *args]
            named["--properties-file"] = str(profile)
    profile = Path(named.get("--properties-file", ""))
    # A file that is not there is spark-submit's to report.
    settings = read_properties(profile) if "--properties-file" in named and profile.is_file() else {}
    master = named.get("--master") or properties.get("spark.master") or settings.get("spark.master", "local[*]")
    deploy_mode = (
        named.get("--deploy-mode")
        or properties.get("spark.submit.deployMode")
        or settings.get("spark.submit.deployMode", "client")
    )
    home = spark_home()
    environ = {**environ, "SPARK_HOME": str(home)}
    if deploy_mode == "client":
        environ.setdefault("PYSPARK_DRIVER_PYTHON", python)
        if master.startswith("local"):
            environ.setdefault("PYSPARK_PYTHON", python)
    return [str(home / "bin" / "spark-submit"), *args], environ


def main() -> None:
    argv, environ = command(sys.argv[1:], dict(os.environ), sys.executable)
    os.execve(argv[0], argv, environ)
