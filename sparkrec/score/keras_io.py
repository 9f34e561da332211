"""Reading a saved Keras model for scoring: safe-mode load, the output that ranks, its catalogue inputs.

Keras (and sparkrec.models.saved, which imports it) is imported inside these
functions: fast-path workers never pay for TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pandas as pd

from sparkrec.models import towers as retrieval
from sparkrec.score.config import MODEL_FILE, ScoreError


def load_keras_model(data: bytes):
    """A model from the bytes of a .keras file, loaded in safe mode (no arbitrary code)."""
    from sparkrec.models import saved

    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        # The saved optimizer state does not match a fresh optimizer's; scoring never uses it.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        path = os.path.join(directory, MODEL_FILE)
        with open(path, "wb") as handle:
            handle.write(data)
        return saved.load(path)


# output_name=auto ranks by the first of these the model has: the rank head
# (P(rated and liked)) was trained for ranking the unrated catalogue, the like
# head (P(like | rated)) was not.
AUTO_OUTPUTS = ("rank", "like")


def named_outputs(model) -> dict:
    """The model's output tensors by name."""
    outputs = model.output
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {t._keras_history.operation.name: t for t in outputs}
    return {outputs._keras_history.operation.name: outputs}


def output_for(model, output_name: str) -> str:
    """The output that `output_name` selects: the only one, the named one, or for "auto" the first of AUTO_OUTPUTS."""
    named = named_outputs(model)
    if len(named) == 1:
        return next(iter(named))
    if output_name == "auto":
        output_name = next((name for name in AUTO_OUTPUTS if name in named), output_name)
    if output_name not in named:
        raise ScoreError(f"model has outputs {sorted(named)}; set output_name to one of them (or auto)")
    return output_name


def scored_model(model, output_name: str):
    """A single-output view of `model`: the output that `output_name` selects (see output_for)."""
    import keras

    if not isinstance(model.output, (dict, list, tuple)):
        return model
    return keras.Model(model.inputs, named_outputs(model)[output_for(model, output_name)])


def catalogue_inputs(model, movies: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every movie-side model input, one row per catalogue movie, shaped and typed as the input."""
    from sparkrec.models.pairwise import INPUT_COLUMNS, USER_INPUTS

    arrays = {}
    for tensor in model.inputs:
        if tensor.name in USER_INPUTS + retrieval.USER_INPUTS:
            continue
        columns = INPUT_COLUMNS.get(tensor.name, (tensor.name,))
        missing = [c for c in columns if c not in movies.columns]
        if missing:
            raise ScoreError(f"model input {tensor.name!r} reads {missing}, which are not columns of movies/")
        values = movies[list(columns)].to_numpy()
        arrays[tensor.name] = values.reshape(len(movies), *tensor.shape[1:]).astype(tensor.dtype)
    return arrays


def check_embeddings(model, vocab_sizes: dict[str, int]) -> None:
    """Each embedding fed straight by an index input must have one row per vocabulary index."""
    from sparkrec.models.pairwise import INPUT_VOCABULARY

    for layer in model.layers:
        if type(layer).__name__ != "Embedding":
            continue
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                name = tensor._keras_history.operation.name
                vocabulary = INPUT_VOCABULARY.get(name)
                if vocabulary is not None and layer.input_dim != vocab_sizes[vocabulary]:
                    raise ScoreError(
                        f"model/vocabulary mismatch: embedding {layer.name!r} of {name} has {layer.input_dim} rows, "
                        f"vocab/{vocabulary} has {vocab_sizes[vocabulary]} indices"
                    )
