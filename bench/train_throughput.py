"""Training throughput: the paper model fed by Petastorm vs fed from in-memory numpy arrays.

    python bench/train_throughput.py --data PREPARED_DIR [--batch-sizes 64,1024] [--repeats 2]
    python bench/train_throughput.py --data PREPARED_DIR --stream-only

For each batch size, one epoch of the paper model is trained on the prepared
train/ split twice, from fresh weights: fed by the training job's Petastorm
feed (sparkrec.train.dataset.Feed: make_batch_reader, row-group shuffle, a shuffle
buffer, numpy slicing, tf.data prefetch), and fed from the same rows held in
numpy arrays (Keras' own array pipeline: the ceiling). Rows/s are counted from
the end of the first step, so graph tracing is not charged to either feed;
with --repeats the two feeds alternate and each keeps its best epoch.

Before that, both Petastorm readers are timed alone (no model): make_batch_reader,
which the feed uses, and the row-by-row make_reader. --stream-only streams
one epoch through the feed without a model and prints its peak memory: the
feed holds one shuffle buffer, whatever the size of the split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

from sparkrec.core import console

# As the jobs start: TensorFlow reads its C++ log level once, when Keras first loads it.
console.quiet(verbose=False, tensorflow=True)

import keras  # noqa: E402

from sparkrec.core import columns as C  # noqa: E402
from sparkrec.core.petastorm_compat import make_reader  # noqa: E402
from sparkrec.train import stages as training  # noqa: E402
from sparkrec.train.config import TrainConfig  # noqa: E402
from sparkrec.train.dataset import Feed, open_prepared  # noqa: E402
from sparkrec.train.pairtrain import feed_arrays, make_feeds  # noqa: E402


class StepClock(keras.callbacks.Callback):
    """Rows/s of one epoch, from the end of its first step to the end of its last."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.first = self.last = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.last = time.perf_counter()
        if batch == 0:
            self.first = self.last

    def rate(self, rows: int) -> float:
        timed_rows = rows - self.batch_size
        return timed_rows / (self.last - self.first)


def model_and_feed(prepared, model: str, batch_size: int, buffer_rows: int) -> tuple[keras.Model, Feed]:
    """A fresh model and the training job's feed over the whole train split (no validation holdout).

    Without sampled negatives: the figures measure the reader and shuffle, row for row.
    """
    config = TrainConfig(
        model=model, batch_size=batch_size, shuffle_buffer_rows=buffer_rows, validation_fraction=0, negatives=0
    ).resolved()
    built = training.build_model(config, prepared.vocab_sizes)
    return built, make_feeds(prepared, built, config).train


def petastorm_epoch(prepared, batch_size: int, buffer_rows: int) -> float:
    model, feed = model_and_feed(prepared, "paper", batch_size, buffer_rows)
    rows = prepared.rows["train"]
    clock = StepClock(batch_size)
    model.fit(feed.dataset(rows), epochs=1, callbacks=[clock], shuffle=False, verbose=0)
    return clock.rate(rows)


def memory_epoch(prepared, arrays, batch_size: int) -> float:
    model, _ = model_and_feed(prepared, "paper", batch_size, 0)
    x, y = arrays
    clock = StepClock(batch_size)
    model.fit(x, y, batch_size=batch_size, epochs=1, callbacks=[clock], shuffle=True, verbose=0)
    return clock.rate(prepared.rows["train"])


def load_arrays(prepared) -> tuple[dict, dict]:
    """The whole train split as the model's numpy inputs and targets (what the ceiling trains on)."""
    _, feed = model_and_feed(prepared, "paper", 8192, 0)
    return feed_arrays(dataclasses.replace(feed, shuffle_seed=None))


def reader_rates(prepared) -> dict[str, float]:
    """Rows/s of each Petastorm reader alone over the train split, paper-model columns only."""
    columns = [C.USER_IDX, C.MOVIE_IDX, C.GENRE1_IDX, C.GENRE2_IDX, C.YEAR_IDX, C.LIKE]
    feed = Feed(prepared.split("train"), {c: ((c,), "int32") for c in columns}, {}, batch_size=1)
    started = time.perf_counter()
    batch_rows = sum(len(chunk[C.USER_IDX]) for chunk in feed.read_once(epoch=0))
    batch_rate = batch_rows / (time.perf_counter() - started)
    started = time.perf_counter()
    reader = make_reader(prepared.split("train").resolve().as_uri(), schema_fields=columns, workers_count=1)
    try:
        row_rows = sum(1 for _ in reader)
    finally:
        reader.stop()
        reader.join()
    return {"make_batch_reader": batch_rate, "make_reader": row_rows / (time.perf_counter() - started)}


def stream_only(prepared, batch_size: int, buffer_rows: int) -> None:
    _, feed = model_and_feed(prepared, "deep", batch_size, buffer_rows)
    before = peak_rss_mb()
    started = time.perf_counter()
    rows = sum(len(y[C.LIKE]) for _, y in feed.batches(epoch=0))
    seconds = time.perf_counter() - started
    print(
        f"streamed {rows:,} train rows (deep model inputs, batch {batch_size}) in {seconds:.1f}s: "
        f"{rows / seconds:,.0f} rows/s; peak RSS {before:,.0f} MB before, {peak_rss_mb():,.0f} MB after "
        f"(shuffle buffer {buffer_rows:,} rows)"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared directory (output of jobs/prepare.py)")
    parser.add_argument("--batch-sizes", default="64,1024")
    parser.add_argument("--repeats", type=int, default=1, help="epochs per feed and batch size; the best counts")
    parser.add_argument("--buffer-rows", type=int, default=200_000, help="the feed's shuffle buffer")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    parser.add_argument("--stream-only", action="store_true", help="stream the feed without a model; print memory")
    parser.add_argument("--json", help="also write the figures to this JSON file (bench/stacks.py reads it)")
    args = parser.parse_args()
    training.configure_runtime(TrainConfig(intra_op_threads=args.threads, inter_op_threads=1))
    prepared = open_prepared(Path(args.data))
    if args.stream_only:
        stream_only(prepared, 1024, args.buffer_rows)
        return
    print(f"train split: {prepared.rows['train']:,} rows; paper model; TensorFlow threads {args.threads}")
    figures = {"readers": reader_rates(prepared), "batches": {}}
    for name, rate in figures["readers"].items():
        print(f"reader alone  {name:<18} {rate:>12,.0f} rows/s")
    arrays = load_arrays(prepared)
    print(f"{'batch':>6} {'in-memory rows/s':>17} {'petastorm rows/s':>17} {'ratio':>6}")
    for batch_size in [int(size) for size in args.batch_sizes.split(",")]:
        memory, petastorm = [], []
        for _ in range(args.repeats):
            memory.append(memory_epoch(prepared, arrays, batch_size))
            petastorm.append(petastorm_epoch(prepared, batch_size, args.buffer_rows))
        best_memory, best_petastorm = max(memory), max(petastorm)
        print(f"{batch_size:>6} {best_memory:>17,.0f} {best_petastorm:>17,.0f} {best_petastorm / best_memory:>6.2f}")
        figures["batches"][batch_size] = {"in_memory": best_memory, "petastorm": best_petastorm}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
