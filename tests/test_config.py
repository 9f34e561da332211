"""conf/*.yaml are the documented defaults: each holds every setting of its job, at the value in code."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from sparkrec.evaluate.config import EvaluateConfig
from sparkrec.prepare.config import PrepareConfig
from sparkrec.score.config import ScoreConfig
from sparkrec.train.config import TrainConfig

from helpers import ROOT


@pytest.mark.parametrize(
    "name, config_class",
    [("prepare", PrepareConfig), ("train", TrainConfig), ("score", ScoreConfig), ("evaluate", EvaluateConfig)],
)
def test_each_yaml_states_every_default_of_its_job(name, config_class):
    documented = yaml.safe_load((ROOT / "conf" / f"{name}.yaml").read_text())
    assert documented == dataclasses.asdict(config_class())
