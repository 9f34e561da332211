"""Check that two runs of the pipeline, one per stack, wrote the same outputs.

    python scripts/compare_stacks.py build/stacks/current build/stacks/legacy

Each root holds `prepared/`, `scores/` and `evaluation/` written by the jobs on
one stack (`make test-legacy` runs them; score and evaluate both use one model,
so only the stack differs). Every Parquet table must hold the same rows (compared
sorted, floats within --tolerance); the manifest's vocabulary sizes, row and
quarantine counts must be equal; every figure under `split` and `models` in
evaluation/metrics.json (the run's own paths aside) must agree within --tolerance.
Prints one line per difference; exits 1 if any.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

TABLE_OWNERS = ("prepared", "scores", "evaluation")
MANIFEST_KEYS = ("vocab_sizes", "rows", "quarantine")
JSON_FILES = ("prepared/manifest.json", "evaluation/metrics.json")


def tables(root: Path) -> list[Path]:
    """Every directory under root that holds Parquet data files, relative to root."""
    found = {p.parent.relative_to(root) for owner in TABLE_OWNERS for p in (root / owner).rglob("part-*.parquet")}
    return sorted(found)


def table_differences(left: Path, right: Path, tolerance: float) -> list[str]:
    a, b = (ds.dataset(path, format="parquet").to_table() for path in (left, right))
    if a.schema != b.schema:
        return [f"schemas differ: {a.schema} vs {b.schema}"]
    if a.num_rows != b.num_rows:
        return [f"{a.num_rows} rows vs {b.num_rows}"]
    order = [(name, "ascending") for name in a.schema.names if not _is_float(a.schema.field(name).type)]
    a, b = a.sort_by(order), b.sort_by(order)
    problems = []
    for name in a.schema.names:
        if _is_float(a.schema.field(name).type):
            x, y = (t.column(name).to_numpy(zero_copy_only=False) for t in (a, b))
            same = np.isclose(x, y, rtol=0.0, atol=tolerance, equal_nan=True)
        else:
            # As Python values, so that nulls compare equal to nulls and lists to lists.
            same = np.array([p == q for p, q in zip(a.column(name).to_pylist(), b.column(name).to_pylist())])
        if not same.all():
            first = int(np.flatnonzero(~same)[0])
            problems.append(f"column {name}: {int((~same).sum())} rows differ, first at sorted row {first}")
    return problems


def _is_float(arrow_type) -> bool:
    return str(arrow_type) in ("float", "double")


def json_differences(a, b, tolerance: float, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} vs {sorted(b)}"]
        return [line for key in a for line in json_differences(a[key], b[key], tolerance, f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} entries vs {len(b)}"]
        return [
            line for i, (x, y) in enumerate(zip(a, b)) for line in json_differences(x, y, tolerance, f"{where}[{i}]")
        ]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        close = math.isclose(a, b, rel_tol=0.0, abs_tol=tolerance) or (math.isnan(a) and math.isnan(b))
        return [] if close else [f"{where}: {a} vs {b}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def differences(left: Path, right: Path, tolerance: float) -> tuple[int, list[str]]:
    """How many tables were compared, and one line per difference."""
    problems = []
    left_tables, right_tables = tables(left), tables(right)
    compared = sorted(set(left_tables) & set(right_tables))
    if left_tables != right_tables:
        problems.append(f"tables differ: {[str(t) for t in left_tables]} vs {[str(t) for t in right_tables]}")
    if not left_tables:
        problems.append(f"no Parquet tables under {left}")
    for table in compared:
        problems += [f"{table}: {line}" for line in table_differences(left / table, right / table, tolerance)]
    missing = [str(root / name) for root in (left, right) for name in JSON_FILES if not (root / name).is_file()]
    if missing:
        return len(compared), problems + [f"missing {path}" for path in missing]
    manifests = [json.loads((root / "prepared" / "manifest.json").read_text()) for root in (left, right)]
    for key in MANIFEST_KEYS:
        problems += json_differences(manifests[0][key], manifests[1][key], 0.0, f"prepared/manifest.json:{key}")
    metrics = [json.loads((root / "evaluation" / "metrics.json").read_text()) for root in (left, right)]
    for key in ("split", "models"):
        problems += json_differences(
            _without_paths(metrics[0][key]),
            _without_paths(metrics[1][key]),
            tolerance,
            f"evaluation/metrics.json:{key}",
        )
    return len(compared), problems


def _without_paths(value):
    """Metrics minus the run's own paths, which differ between the two roots by design."""
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if k not in ("model_dir",)}
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left", type=Path)
    parser.add_argument("right", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)
    compared, problems = differences(args.left, args.right, args.tolerance)
    for line in problems:
        print(f"DIFFERENT {line}")
    print(f"compare_stacks: {compared} tables, manifest and metrics: {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
