"""Prepared data for training: checks, metadata, and Petastorm -> tf.data input pipelines.

`open_prepared` checks a prepare output before any training starts (manifest,
vocabulary sizes against the largest index in each split, empty splits) from
Parquet footers alone. `Feed` streams one split through Petastorm's
`make_batch_reader`: one row group at a time, shuffled at row-group level and
again over a bounded buffer of rows, sliced into batches in numpy and handed to
tf.data through a generator. Memory is bounded by the buffer and two row groups
of read-ahead, not by the split.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sparkrec.core import columns as C
from sparkrec.core import prepare_output
from sparkrec.core.errors import SparkrecError
from sparkrec.core.petastorm_compat import make_batch_reader
from sparkrec.core.runinfo import get_logger
from sparkrec.train.negatives import NegativeSampler

# TensorFlow is imported where a pipeline is built, not here: jobs/train.py imports this module
# (DataError) before sparkrec.core.console has set TensorFlow's logging.
if TYPE_CHECKING:
    import tensorflow as tf

SPLITS = ("train", "test")
READ_ATTEMPTS = 5
# Batches handed to tf.data per generator element, which tf.data's rebatch (C++) cuts apart again:
# from_generator spends about 0.6 ms on every element it converts, longer than the paper model's
# training step at batch 64 takes per 10 rows (docs/benchmarks.md).
BLOCK_BATCHES = 32
log = get_logger("dataset")


class DataError(SparkrecError):
    """A prepared dataset the training job cannot use; the message is one line."""


@dataclass(frozen=True)
class Prepared:
    """A checked prepare output: where it is, its manifest, vocabulary sizes and split sizes."""

    root: Path
    manifest: dict
    vocab_sizes: dict[str, int]
    rows: dict[str, int]

    def split(self, name: str) -> Path:
        return self.root / name


def open_prepared(root: str | Path) -> Prepared:
    """Check a prepare output and describe it; raise DataError saying what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no prepared dataset at {root}")
    manifest = prepare_output.read_manifest(None, str(root), DataError)
    vocab_sizes = prepare_output.vocab_sizes(manifest, str(root), C.VOCABULARY_NAMES, DataError)
    rows = {split: check_split(root / split, vocab_sizes) for split in SPLITS}
    return Prepared(root, manifest, vocab_sizes, rows)


def parquet_files(split_dir: Path) -> list[Path]:
    return sorted(split_dir.glob("*.parquet"))


def read_frame(directory: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A directory of Parquet files (a prepare output's split, movies/ or vocab table) as one pandas frame."""
    files = parquet_files(directory)
    if not files:
        raise DataError(f"no Parquet files in {directory}")
    columns = None if columns is None else list(columns)
    return pd.concat(pd.read_parquet(path, columns=columns) for path in files).reset_index(drop=True)


def check_split(split_dir: Path, vocab_sizes: Mapping[str, int]) -> int:
    """Row count of a split whose every index fits its vocabulary; DataError otherwise."""
    if not split_dir.is_dir():
        raise DataError(f"split {split_dir.name}/ is missing under {split_dir.parent}")
    rows, low, high = 0, {}, {}
    for path in parquet_files(split_dir):
        rows += index_ranges(path, low, high)
    if rows == 0:
        raise DataError(f"split {split_dir.name}/ under {split_dir.parent} has no rows")
    for column, vocabulary in C.INDEX_VOCABULARY.items():
        size = vocab_sizes[vocabulary]
        if low[column] < 0 or high[column] >= size:
            raise DataError(
                f"{split_dir.name}/{column} spans {low[column]}..{high[column]} but the manifest's "
                f"{vocabulary!r} vocabulary has {size} entries (0..{size - 1}): data and manifest do not match"
            )
    return rows


def index_ranges(path: Path, low: dict[str, int], high: dict[str, int]) -> int:
    """Fold one file's index minima and maxima into `low`/`high`; return its row count.

    Footer statistics answer without reading data; a row group without them is read.
    """
    parquet = pq.ParquetFile(path)
    metadata = parquet.metadata
    names = metadata.schema.names
    missing = [column for column in C.INDEX_VOCABULARY if column not in names]
    if missing:
        raise DataError(f"{path.parent.name}/{path.name} lacks column(s) {', '.join(missing)}")
    for group in range(metadata.num_row_groups):
        if metadata.row_group(group).num_rows == 0:
            continue
        for column in C.INDEX_VOCABULARY:
            stats = metadata.row_group(group).column(names.index(column)).statistics
            if stats is not None and stats.has_min_max:
                smallest, largest = int(stats.min), int(stats.max)
            else:
                values = parquet.read_row_group(group, columns=[column]).column(0).to_numpy()
                smallest, largest = int(values.min()), int(values.max())
            low[column] = min(low.get(column, smallest), smallest)
            high[column] = max(high.get(column, largest), largest)
    return metadata.num_rows


def copy_vocabularies(prepared: Prepared, target: Path) -> None:
    """The vocabularies a model was trained with, next to it: vocab/ as prepared, and their sizes."""
    shutil.copytree(prepared.root / "vocab", target / "vocab")
    (target / "vocab_sizes.json").write_text(json.dumps(prepared.vocab_sizes, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Holdout:
    """A fixed share of the training split kept out for validation, chosen by hashing (user, movie).

    The hash makes membership a property of the row, not of the read order, so
    the training and validation feeds agree without coordination.
    """

    fraction: float
    seed: int

    def mask(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """True for held-out rows (a splitmix64 finaliser over the pair and the seed)."""
        x = (users.astype(np.uint64) << np.uint64(32)) | movies.astype(np.uint64)
        x ^= np.uint64(self.seed * 0x9E3779B97F4A7C15 % 2**64)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        return (x >> np.uint64(11)).astype(np.float64) / 2.0**53 < self.fraction

    def count(self, split_dir: Path) -> int:
        """Held-out rows in a split, reading only the two key columns file by file."""
        total = 0
        for path in parquet_files(split_dir):
            keys = pq.read_table(path, columns=[C.USER_IDX, C.MOVIE_IDX])
            total += int(self.mask(keys[C.USER_IDX].to_numpy(), keys[C.MOVIE_IDX].to_numpy()).sum())
        return total


@dataclass(frozen=True)
class Feed:
    """One split as model batches: (inputs dict, targets dict) of numpy arrays.

    `inputs` maps each model input to (columns, dtype); the columns are stacked
    into a (rows, len(columns)) array. `targets` maps each output to its label
    column. With `shuffle_seed` set, each epoch reads row groups in a seeded
    order and permutes rows within a buffer of `buffer_rows`; the same (seed,
    epoch) always gives the same batches. With `negatives`, each batch also
    carries sampled unrated pairs and comes as (inputs, targets, sample weights).
    `holdout` with `keep_holdout` selects which side of a Holdout this feed serves.
    """

    path: Path
    inputs: Mapping[str, tuple[Sequence[str], str]]
    targets: Mapping[str, str]
    batch_size: int
    shuffle_seed: int | None = None
    buffer_rows: int = 0
    holdout: Holdout | None = None
    keep_holdout: bool = False
    negatives: NegativeSampler | None = None

    def columns(self) -> list[str]:
        needed = [column for columns, _ in self.inputs.values() for column in columns] + list(self.targets.values())
        if self.holdout is not None:
            needed += [C.USER_IDX, C.MOVIE_IDX]
        return list(dict.fromkeys(needed))

    def chunks(self, epoch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Row groups as column dicts, in read order, holdout rows kept or dropped.

        petastorm 0.13.1's thread pool can report the end of data before its
        ventilator thread has queued the first row group: a reader then yields
        nothing. Such a reader is reopened; any other short read is an error,
        never a silently smaller epoch.
        """
        expected = split_rows(self.path)
        for _ in range(READ_ATTEMPTS):
            read = 0
            for chunk in self.read_once(epoch):
                read += chunk_rows(chunk)
                yield self.select(chunk)
            if read == expected:
                return
            if read:
                raise DataError(f"petastorm returned {read} of the {expected} rows of {self.path}")
            log.warning("petastorm reader of %s ended before its first row group; reopening it", self.path)
        raise DataError(f"petastorm returned no rows of {self.path} in {READ_ATTEMPTS} attempts")

    def read_once(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        shuffle = self.shuffle_seed is not None
        reader = make_batch_reader(
            self.path.resolve().as_uri(),
            schema_fields=[re.escape(column) for column in self.columns()],
            # One worker keeps the row-group order the seeded ventilator chose: reproducible.
            workers_count=1,
            # Read-ahead of at most two decoded row groups: memory stays bounded on any split size.
            results_queue_size=2,
            shuffle_row_groups=shuffle,
            seed=epoch_seed(self.shuffle_seed, epoch) if shuffle else None,
            num_epochs=1,
            convert_early_to_numpy=True,
        )
        # stop + join rather than `with reader`: its __exit__ prints a line per reader to stdout.
        try:
            for group in reader:
                yield group._asdict()
        finally:
            reader.stop()
            reader.join()

    def select(self, chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rows of a chunk on this feed's side of the holdout."""
        if self.holdout is None:
            return chunk
        held = self.holdout.mask(chunk[C.USER_IDX], chunk[C.MOVIE_IDX])
        return take(chunk, held if self.keep_holdout else ~held)

    def rows(self, epoch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of rows, permuted over the shuffle buffer when shuffling."""
        if self.shuffle_seed is None:
            yield from self.chunks(epoch)
            return
        rng = np.random.default_rng([self.shuffle_seed, epoch])
        yield from shuffle_buffered(self.chunks(epoch), self.buffer_rows, rng)

    def batches(self, epoch: int = 0) -> Iterator[tuple[dict[str, np.ndarray], ...]]:
        for index, batch in enumerate(rebatch(self.rows(epoch), self.batch_size)):
            x, y = self.model_arrays(batch)
            yield (x, y) if self.negatives is None else self.negatives.augment(x, y, epoch, index)

    @property
    def model_batch_rows(self) -> int:
        """Rows of a full model batch: the rated rows and, with negatives, their sampled pairs."""
        return self.batch_size * (1 + (self.negatives.per_row if self.negatives is not None else 0))

    def blocks(self, epoch: int = 0) -> Iterator[tuple[dict[str, np.ndarray], ...]]:
        """The epoch's batches, BLOCK_BATCHES at a time laid end to end (the last block may hold fewer)."""
        pending = []
        for batch in self.batches(epoch):
            pending.append(batch)
            if len(pending) == BLOCK_BATCHES:
                yield _joined(pending)
                pending = []
        if pending:
            yield _joined(pending)

    def model_arrays(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        x = {
            name: np.stack([batch[column] for column in columns], axis=1).astype(dtype, copy=False)
            for name, (columns, dtype) in self.inputs.items()
        }
        y = {name: batch[column].astype(np.float32).reshape(-1, 1) for name, column in self.targets.items()}
        return x, y

    def signature(self) -> tuple[dict[str, tf.TensorSpec], ...]:
        import tensorflow as tf

        x = {
            name: tf.TensorSpec((None, len(columns)), dtype, name=name)
            for name, (columns, dtype) in self.inputs.items()
        }
        y = {name: tf.TensorSpec((None, 1), tf.float32, name=name) for name in self.targets}
        if self.negatives is None:
            return x, y
        return x, y, {name: tf.TensorSpec((None,), tf.float32, name=f"{name}_weight") for name in self.targets}

    def dataset(self, rows: int, first_epoch: int = 0, epochs: int = 1) -> tf.data.Dataset:
        """Epochs first_epoch..epochs-1 back to back, each ceil(rows / batch_size) batches.

        The epoch number travels inside the pipeline, so a resumed run replays
        exactly the batches an uninterrupted run would have seen.
        """
        import tensorflow as tf

        signature = self.signature()

        # Every full batch has model_batch_rows rows and only an epoch's last one is short, so
        # cutting each epoch's blocks back every model_batch_rows rows gives exactly `batches`.
        def one_epoch(epoch):
            blocks = tf.data.Dataset.from_generator(
                lambda e: self.blocks(int(e)), output_signature=signature, args=(epoch,)
            )
            return blocks.rebatch(self.model_batch_rows)

        batches_per_epoch = -(-rows // self.batch_size)
        dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches_per_epoch * (epochs - first_epoch)))
        return dataset.prefetch(tf.data.AUTOTUNE)


def split_rows(split_dir: Path) -> int:
    """Rows in a split, from the Parquet footers."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in parquet_files(split_dir))


def epoch_seed(seed: int, epoch: int) -> int:
    """Petastorm wants one int seed; mix the epoch in so every epoch reads in a new order."""
    # Never 0: petastorm treats seed 0 as "unseeded".
    return int(np.random.default_rng([seed, epoch]).integers(2**31 - 1)) or 1


def take(chunk: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[index] for name, values in chunk.items()}


def concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(chunks) == 1:
        return chunks[0]
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def _joined(batches: list[tuple[dict[str, np.ndarray], ...]]) -> tuple[dict[str, np.ndarray], ...]:
    """Model batches ((inputs, targets[, weights]) dicts) laid end to end, part by part."""
    return tuple(concat([batch[part] for batch in batches]) for part in range(len(batches[0])))


def chunk_rows(chunk: dict[str, np.ndarray]) -> int:
    return len(next(iter(chunk.values())))


def shuffle_buffered(
    chunks: Iterator[dict[str, np.ndarray]], buffer_rows: int, rng: np.random.Generator
) -> Iterator[dict[str, np.ndarray]]:
    """Gather chunks until `buffer_rows`, permute them together, emit; repeat.

    Row groups come from one Spark task each and may be ordered by user: the
    permutation over several of them is what mixes users within a batch.
    """
    pending, held = [], 0
    for chunk in chunks:
        pending.append(chunk)
        held += chunk_rows(chunk)
        if held >= buffer_rows:
            yield take(concat(pending), rng.permutation(held))
            pending, held = [], 0
    if held:
        yield take(concat(pending), rng.permutation(held))


def rebatch(chunks: Iterator[dict[str, np.ndarray]], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Slice chunks of any size into batches of `batch_size` rows (the last one may be short)."""
    carry = None
    for chunk in chunks:
        if carry is not None:
            chunk = concat([carry, chunk])
        rows = chunk_rows(chunk)
        full = rows - rows % batch_size
        for start in range(0, full, batch_size):
            yield {name: values[start : start + batch_size] for name, values in chunk.items()}
        carry = {name: values[full:] for name, values in chunk.items()} if full < rows else None
    if carry is not None:
        yield carry
