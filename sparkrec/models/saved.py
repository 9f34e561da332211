"""Loading a saved model of either kind: importing both model modules registers every custom layer."""

from __future__ import annotations

import keras

from sparkrec.models import pairwise, twotower

# Keras finds our layers by their registered names; importing the modules that define them is the registration.
LAYER_MODULES = (pairwise, twotower)


def load(path) -> keras.Model:
    """Load a saved model in safe mode (no arbitrary code: our custom layers are registered)."""
    return keras.saving.load_model(path, safe_mode=True)
