"""A model and the data it scores, checked; and the scoring path chosen for the model.

The scoring job's extract and plan stages run these; the evaluation runs them
too, so every model it measures is checked and scored exactly as the job would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.core import prepare_output, storage
from sparkrec.models import towers as retrieval
from sparkrec.score.config import MODEL_FILE, ScoreError
from sparkrec.score.factorize import NotFactorizable, factorize
from sparkrec.score.keras_io import catalogue_inputs, check_embeddings, load_keras_model, output_for, scored_model
from sparkrec.score.kernels import kernel_for
from sparkrec.score.workers import Payload

# What scoring reads of a prepare output.
SCORED_TABLES = ("manifest.json", "interactions", "movies", "vocab/user")


@dataclass
class Tables:
    """What scoring reads of a prepare output: its tables (lazy) and the catalogue on the driver."""

    data_dir: str
    interactions: DataFrame
    movies: DataFrame
    user_vocab: DataFrame
    catalogue: pd.DataFrame  # movies/ sorted by movieId
    vocab_sizes: dict[str, int]


@dataclass
class Inputs(Tables):
    """The prepared tables and the model file they are scored with."""

    model_dir: str
    vocabularies_checked: list[str]
    model_bytes: bytes
    model_sha256: str


@dataclass
class Plan:
    """The scoring path chosen for the model, why, the output that ranks, and the payload the workers get."""

    path: str
    reason: str
    kernel: str
    output: str
    payload: Payload


def read_tables(spark: SparkSession, data_dir: str) -> Tables:
    """Check the prepared tables scoring reads, and read the catalogue."""
    data_dir = data_dir.rstrip("/")
    prepare_output.require(spark, data_dir, SCORED_TABLES, ScoreError)
    manifest = prepare_output.read_manifest(spark, data_dir, ScoreError)
    movies = spark.read.parquet(f"{data_dir}/movies")
    catalogue = movies.orderBy(C.MOVIE_ID).toPandas()
    if catalogue.empty:
        raise ScoreError(f"{data_dir}/movies has no rows: there is no catalogue to rank")
    return Tables(
        data_dir=data_dir,
        interactions=spark.read.parquet(f"{data_dir}/interactions"),
        movies=movies,
        user_vocab=spark.read.parquet(f"{data_dir}/vocab/user"),
        catalogue=catalogue,
        vocab_sizes=prepare_output.vocab_sizes(manifest, data_dir, C.VOCABULARY_NAMES, ScoreError),
    )


def read_inputs(spark: SparkSession, data_dir: str, model_dir: str) -> Inputs:
    """The prepared tables (`read_tables`), and the model directory's model file, checked against them."""
    tables = read_tables(spark, data_dir)
    model_dir = model_dir.rstrip("/")
    model_path = f"{model_dir}/{MODEL_FILE}"
    if not storage.exists(spark, model_path):
        raise ScoreError(f"{model_path} is missing: not a training job's model directory")
    model_bytes = read_bytes(spark, model_path)
    return Inputs(
        **vars(tables),
        model_dir=model_dir,
        vocabularies_checked=check_vocabularies(spark, model_dir, tables.data_dir),
        model_bytes=model_bytes,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
    )


def read_bytes(spark: SparkSession, path: str) -> bytes:
    """A whole (small) file from any Hadoop filesystem."""
    ((_, data),) = spark.sparkContext.binaryFiles(storage.qualify(path)).collect()
    return bytes(data)


def vocabulary_rows(spark: SparkSession, directory: str, names: list[str]) -> pd.DataFrame:
    """(vocabulary, key, index) of the named vocabularies under directory/vocab, sorted, in one Spark job."""
    parts = []
    for name in names:
        key, index = C.VOCABULARIES[name]
        frame = spark.read.parquet(f"{directory}/vocab/{name}")
        columns = [F.lit(name).alias("vocabulary"), F.col(key).cast("string").alias("key"), F.col(index).alias("index")]
        parts.append(frame.select(*columns))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    rows = union.toPandas()
    return rows.sort_values(["vocabulary", "index"]).reset_index(drop=True)


def check_vocabularies(spark: SparkSession, model_dir: str, data_dir: str) -> list[str]:
    """Fail when a vocabulary the model was trained with differs from the data's; return those compared.

    Equal sizes are not enough: a model trained on another user sample has
    as many movie indices, pointing at other movies.
    """
    names = [name for name in C.VOCABULARIES if storage.exists(spark, f"{model_dir}/vocab/{name}")]
    if not names:
        return []
    trained, data = vocabulary_rows(spark, model_dir, names), vocabulary_rows(spark, data_dir, names)
    for name in names:
        if (
            not trained[trained.vocabulary == name]
            .reset_index(drop=True)
            .equals(data[data.vocabulary == name].reset_index(drop=True))
        ):
            raise ScoreError(
                f"model/vocabulary mismatch: {model_dir}/vocab/{name} differs from {data_dir}/vocab/{name}"
            )
    return names


def choose(inputs: Inputs, path: str, output_name: str, generic_batch_pairs: int, fold_in: retrieval.FoldIn) -> Plan:
    """Load the model, check it against the data, and choose the path (ScoreConfig documents the settings)."""
    model_file = f"{inputs.model_dir}/{MODEL_FILE}"
    # Keras reports a file that is not a zip archive as "File not found"; say what is wrong instead.
    if not inputs.model_bytes.startswith(b"PK"):
        raise ScoreError(f"{model_file} is not a Keras model file (a .keras zip archive)")
    try:
        loaded = load_keras_model(inputs.model_bytes)
    except (ValueError, OSError, TypeError) as exc:
        raise ScoreError(f"cannot load {model_file}: {str(exc).splitlines()[0]}") from None
    model_key = (inputs.model_dir, inputs.model_sha256, inputs.data_dir)
    if retrieval.is_twotower(loaded):
        return _twotower_plan(loaded, inputs, path, output_name, model_key, fold_in)
    output = output_for(loaded, output_name)
    model = scored_model(loaded, output)
    check_embeddings(model, inputs.vocab_sizes)
    catalogue = catalogue_inputs(model, inputs.catalogue)
    movie_ids = inputs.catalogue[C.MOVIE_ID].to_numpy(dtype=np.int64)
    reason = "path=generic was asked for"
    if path != "generic":
        try:
            factorized = factorize(model, inputs.vocab_sizes["user"], catalogue)
        except NotFactorizable as exc:
            if path == "fast":
                raise ScoreError(f"path=fast: the model does not factorize ({exc})") from None
            reason = f"the model does not factorize: {exc}"
        else:
            payload = Payload(model_key + ("fast", output), movie_ids, factorized=factorized)
            kernel = type(kernel_for(factorized)).__name__
            return Plan("fast", "the first Dense reads per-input embeddings only", kernel, output, payload)
    payload = Payload(
        model_key + ("generic", output),
        movie_ids,
        model_bytes=inputs.model_bytes,
        catalogue=catalogue,
        output_name=output,
        batch_pairs=generic_batch_pairs,
    )
    return Plan("generic", reason, "keras", output, payload)


def _twotower_plan(
    model, inputs: Inputs, path: str, output_name: str, model_key: tuple, fold_in: retrieval.FoldIn
) -> Plan:
    """A two-tower model ranks by its score output, a dot product: the movie side is computed here, once."""
    if path == "generic":
        raise ScoreError("path=generic: a two-tower model is scored by its towers (path auto or fast)")
    if output_name not in ("auto", retrieval.SCORE_OUTPUT):
        raise ScoreError(
            f"output_name={output_name}: a two-tower model ranks by its {retrieval.SCORE_OUTPUT!r} output (set auto)"
        )
    catalogue = catalogue_inputs(model, inputs.catalogue)
    from sparkrec.models import twotower  # Keras is loaded already: the driver holds the model

    towers = twotower.arrays(model, catalogue)
    rows = len(towers.history_embedding)
    if rows != inputs.vocab_sizes["movie"]:
        raise ScoreError(
            f"model/vocabulary mismatch: history_embedding has {rows} rows, vocab/movie has "
            f"{inputs.vocab_sizes['movie']} indices"
        )
    movie_ids = inputs.catalogue[C.MOVIE_ID].to_numpy(dtype=np.int64)
    payload = Payload(
        model_key + ("fast", retrieval.SCORE_OUTPUT),
        movie_ids,
        towers=towers,
        movie_idx=inputs.catalogue[C.MOVIE_IDX].to_numpy(dtype=np.int64),
        fold_in=fold_in,
    )
    reason = "a two-tower model: user vector . movie vector + movie bias, the user vector from the history"
    return Plan("fast", reason, "dot", retrieval.SCORE_OUTPUT, payload)
