"""Benchmark: the Spark prepare job against a single-node DuckDB reference doing the same work.

    .venv/bin/python bench/prepare_vs_duckdb.py --raw /tmp/ml20m-synth --work /tmp/bench-prepare

Generates the full-scale synthetic dataset first when --raw does not exist
(`jobs/generate.py --users 138493`, ~20M ratings). Both sides read the CSVs,
join ratings with movies, parse the release year, split genres, write the
interactions table, sample 5,000 users by a seeded hash, split 90/10 and write
the two splits; Spark also validates, quarantines, builds vocabularies and
writes Petastorm metadata, figures and a manifest, so the comparison is, if
anything, tilted towards DuckDB. Prints wall-clock seconds, peak RSS of each
side's process tree, and the ratio. Pass --raw-cache to also time a second
Spark run that reuses the parsed-CSV cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2


class PeakRss:
    """Samples the summed RSS of a process and its children until stopped."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            self._stop.wait(interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def ensure_raw(raw: Path) -> None:
    if (raw / "ratings.csv").is_file():
        return
    subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "generate.py"), "--users", "138493", "--output", str(raw)], check=True
    )


def warm_page_cache(raw: Path) -> None:
    """Read every input once, so neither side pays for the first read from disk (DuckDB runs first)."""
    for path in sorted(raw.glob("*.csv")):
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass


def run_spark(raw: Path, output: Path, extra: list[str]) -> tuple[float, int, dict]:
    command = [
        str(Path(sys.executable).parent / "sparkrec-submit"),
        "--properties-file",
        str(ROOT / "conf/spark/local.conf"),
        str(ROOT / "jobs" / "prepare.py"),
        "--input",
        str(raw),
        "--output",
        str(output),
        *extra,
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    with PeakRss(process.pid) as rss:
        _, stderr = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"bench: spark prepare failed:\n{stderr[-3000:]}")
    return seconds, rss.peak, json.loads((output / "manifest.json").read_text())


DUCKDB_SQL = """
SET threads = {threads};
CREATE TABLE movies AS
  SELECT movieId, title, genres,
         TRY_CAST(NULLIF(regexp_extract(trim(title), '\\((\\d{{4}})(?:\\s*[-]\\s*(?:\\d{{4}})?)?\\)$', 1), '')
                  AS INTEGER) AS release_year,
         string_split(genres, '|')[1] AS genre1, string_split(genres, '|')[2] AS genre2,
         {flags}
  FROM read_csv('{raw}/movies.csv', header = true, quote = '"', escape = '"',
       columns = {{'movieId': 'INTEGER', 'title': 'VARCHAR', 'genres': 'VARCHAR'}});
COPY (
  SELECT r.userId, r.movieId, r.rating, r.timestamp, CAST(r.rating >= 3.5 AS INTEGER) AS "like",
         m.release_year, m.genre1, m.genre2
  FROM read_csv('{raw}/ratings.csv', header = true,
       columns = {{'userId': 'INTEGER', 'movieId': 'INTEGER', 'rating': 'DOUBLE', 'timestamp': 'BIGINT'}}) r
  JOIN movies m USING (movieId)
) TO '{out}/interactions.parquet' (FORMAT parquet);
CREATE TABLE sampled AS
  SELECT i.*, m.title, m.genres, {flag_names} FROM read_parquet('{out}/interactions.parquet') i
  JOIN (SELECT DISTINCT userId FROM read_parquet('{out}/interactions.parquet')
        ORDER BY hash(userId, 42), userId LIMIT 5000) u USING (userId)
  JOIN movies m USING (movieId);
COPY (SELECT * FROM sampled WHERE hash(userId, movieId, 42) % 10 <> 0) TO '{out}/train.parquet' (FORMAT parquet);
COPY (SELECT * FROM sampled WHERE hash(userId, movieId, 42) % 10 = 0) TO '{out}/test.parquet' (FORMAT parquet);
"""


def run_duckdb(raw: Path, output: Path) -> tuple[float, int]:
    from sparkrec.core import columns as C

    flags = ",\n         ".join(
        f"CAST(list_contains(string_split(genres, '|'), '{genre}') AS TINYINT) AS {flag}"
        for genre, flag in zip(C.GENRE_LIST, C.GENRE_FLAG_COLUMNS)
    )
    output.mkdir(parents=True)
    flag_names = ", ".join(f"m.{flag}" for flag in C.GENRE_FLAG_COLUMNS)
    sql = DUCKDB_SQL.format(threads=THREADS, raw=raw, out=output, flags=flags, flag_names=flag_names)
    script = f"import duckdb; duckdb.connect().execute({sql!r})"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", script])
    with PeakRss(process.pid) as rss:
        process.wait()
    if process.returncode != 0:
        sys.exit("bench: duckdb reference failed")
    return time.perf_counter() - start, rss.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("/tmp/ml20m-synth"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-prepare"))
    parser.add_argument("--raw-cache", action="store_true", help="also time a rerun from the parsed-CSV cache")
    args = parser.parse_args()
    ensure_raw(args.raw)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    size_mb = (args.raw / "ratings.csv").stat().st_size / 1e6
    warm_page_cache(args.raw)

    duck_s, duck_rss = run_duckdb(args.raw, args.work / "duckdb")
    spark_s, spark_rss, manifest = run_spark(args.raw, args.work / "spark", [])
    # Other work on the machine inflates both sides unevenly: the load says whether a run counts.
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"input: {args.raw}/ratings.csv {size_mb:,.0f} MB, {manifest['rows']['ratings_read']:,} ratings")
    print(f"duckdb reference ({THREADS} threads): {duck_s:6.1f} s   peak RSS {duck_rss / 2**30:5.2f} GiB")
    print(f"spark prepare (local[2], wall):  {spark_s:6.1f} s   peak RSS {spark_rss / 2**30:5.2f} GiB")
    print(f"ratio spark / duckdb: {spark_s / duck_s:.2f}x   (target <= 3x)")
    print("spark stage seconds:", json.dumps(manifest["timings_s"], sort_keys=True))
    if args.raw_cache:
        cache = ["--set", f"raw_cache={args.work / 'raw-cache'}"]
        first, _, _ = run_spark(args.raw, args.work / "spark-cache-1", cache)
        second, rss2, _ = run_spark(args.raw, args.work / "spark-cache-2", cache)
        print(
            f"spark with raw cache: filling {first:6.1f} s, reusing {second:6.1f} s "
            f"(ratio {second / duck_s:.2f}x), peak RSS {rss2 / 2**30:5.2f} GiB"
        )


if __name__ == "__main__":
    main()
