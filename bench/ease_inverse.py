"""What one EASE lambda costs: the evaluate job's Cholesky inverse against one eigendecomposition.

    python bench/ease_inverse.py --data PREPARED_DIR [--lambda 300]

Builds the binary rated-in-train Gram matrix of the prepared train split in
float32 with `sparkrec.evaluate.ease.Matrix`, then times `ease.weights` (LAPACK potrf +
potri, then B = -P / diag(P)), `np.linalg.eigh` of the same matrix, and the
product V diag(1 / (s + lambda)) V^T that an eigendecomposition needs for each
further lambda. Prints the three times and the grid size from which the
eigendecomposition would be cheaper.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from sparkrec.core import columns as C
from sparkrec.evaluate import ease
from sparkrec.train.dataset import DataError, read_frame

# Every rated movie counts 1: the binary rated-in-train matrix. The weight changes the values, not the costs.
DISLIKE_WEIGHT = 1.0


def timed(work):
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a prepare output directory")
    parser.add_argument("--lambda", dest="lam", type=float, default=300.0)
    args = parser.parse_args()

    pairs = read_frame(args.data / "train", (C.USER_IDX, C.MOVIE_IDX, C.LIKE))
    matrix = ease.Matrix(pairs, int(pairs[C.USER_IDX].max()) + 1, DISLIKE_WEIGHT)
    gram = matrix.gram()
    print(
        f"{len(matrix.items):,} movies rated in train, Gram matrix {gram.nbytes / 2**30:.2f} GiB (float32)", flush=True
    )

    _, cholesky = timed(lambda: ease.weights(gram, args.lam))
    print(f"ease.weights (Cholesky inverse and B), one lambda: {cholesky:.1f} s", flush=True)
    (values, vectors), eigh = timed(lambda: np.linalg.eigh(gram))
    print(f"np.linalg.eigh, once for every lambda: {eigh:.1f} s", flush=True)
    _, per_lambda = timed(lambda: (vectors * (1.0 / (values + args.lam))) @ vectors.T)
    print(f"V diag(1 / (s + lambda)) V^T, each lambda: {per_lambda:.1f} s", flush=True)
    if per_lambda < cholesky:
        grid = math.ceil(eigh / (cholesky - per_lambda))
        print(
            f"the eigendecomposition is cheaper from a grid of {grid} lambdas on "
            f"(eigh / Cholesky: {eigh / cholesky:.1f}x)"
        )
    else:
        print("the eigendecomposition is never cheaper: a lambda's product costs as much as its Cholesky inverse")


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        raise SystemExit(f"ease_inverse: {error}") from None
