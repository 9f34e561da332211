"""Write a synthetic MovieLens dataset in the file layout of ML-20M (default), ML-10M, ML-1M or ML-100K.

    python jobs/generate.py --output DIR [--users 138493] [--movies M] [--seed 42]
        [--layout 100k|1m|10m|20m] [--force] [--verbose]

The defaults give ML-20M's full shape (138,493 users, 27,278 movies, 20,000,263
ratings); fewer users scale the catalogue down with them. --layout writes the
same data as that release's files, with its separators, encoding and genre
names (docs/data-contract.md); ML-1M and ML-100K get whole stars (half stars
rounded up) and no tags.

Files are written to a staging directory next to DIR and renamed into place, so
an interrupted run never leaves a partial dataset at DIR. DIR may be missing,
empty, or an earlier generated dataset (replaced once the new one is complete);
anything else is refused unless --force is given. Parameters, seed and row
counts are recorded in DIR/generator.json.
"""

from __future__ import annotations

import argparse
import sys

from sparkrec.core import console, outputs
from sparkrec.core.errors import SparkrecError
from sparkrec.synthetic import generator as synthetic
from sparkrec.synthetic.shape import DEFAULT_LAYOUT, DEFAULT_SEED, FULL_USERS, LAYOUTS, settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    outputs.add_arguments(parser, "directory to create")
    parser.add_argument("--users", type=int, default=FULL_USERS, help="number of users (default: ML-20M's)")
    parser.add_argument("--movies", type=int, help="catalogue size (default: scaled with --users)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--layout",
        choices=list(LAYOUTS),
        default=DEFAULT_LAYOUT,
        help="the MovieLens release whose files are written (default: %(default)s)",
    )
    console.add_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console.quiet(args.verbose)
    config = settings(args.users, args.movies, args.seed)
    record = synthetic.generate(args.output, config, args.force, args.layout)
    rows = synthetic.table_rows(record, args.layout)
    print(
        f"generate: wrote {rows['ratings']:,} ratings of {config.users:,} users on {rows['movies']:,} movies "
        f"and {rows.get('tags', 0):,} tags to {args.output} ({args.layout} layout)"
    )
    return record


if __name__ == "__main__":
    try:
        main()
    except (SparkrecError, OSError) as exc:
        sys.exit(f"generate: {exc}")
