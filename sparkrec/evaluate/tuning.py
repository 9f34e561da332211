"""How each tuned baseline chooses its settings: a seeded carve-out of train, a grid search widened past its ends."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame

from sparkrec.core import columns as C
from sparkrec.core import ranking
from sparkrec.core.runinfo import get_logger
from sparkrec.prepare import sampling
from sparkrec.score.scorers import top_k_lists

log = get_logger("baselines")


def carve_validation(train: DataFrame, fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Split train into (fit, validation) by a seeded hash of each rating.

    The timestamp is part of the hash so the carve-out is independent of the
    prepare job's (userId, movieId) hash split even with an equal seed:
    hashing the same keys with the same seed would select no train row.
    """
    draw = sampling.unit_hash(seed, C.USER_ID, C.MOVIE_ID, C.TIMESTAMP)
    return train.filter(draw >= fraction), train.filter(draw < fraction)


@dataclass
class RankingCarveOut:
    """The carve-out as the ranking baselines are tuned on it: the evaluate job's protocol inside train.

    Each user with a liked carve-out movie ranks every catalogue movie not in
    their fit part; relevant = their liked carve-out movies.
    """

    fit: DataFrame  # train without the carve-out (cached)
    validation: pd.DataFrame  # userId, movieId, user_idx, like of the carve-out
    users: pd.DataFrame  # userId, user_idx, watched (fit-part movieIds) of the users with a liked carve-out movie
    relevant: dict[int, set]
    k: int
    block: int

    def ndcg(self, scorer) -> float:
        lists = top_k_lists(scorer, self.users, self.k, self.block)
        return ranking.mean_ranking_metrics(lists, self.relevant, self.k)[f"ndcg@{self.k}"]

    @property
    def measure(self) -> str:
        return f"ndcg@{self.k}"


class Skipped(RuntimeError):
    """A baseline that is not fitted in this run; the message says why, and the report shows it."""


class FitFailed(Skipped):
    """A model's solver could not fit one setting (the message says why); the search goes on without it,
    and the baseline is skipped only when no setting could be fitted."""


def grid_of(**options: list) -> list[dict]:
    """Every combination of the option lists, e.g. grid_of(rank=[10, 30], reg_param=[0.1])."""
    names = list(options)
    return [dict(zip(names, values)) for values in itertools.product(*options.values())]


def _beyond(edge, neighbour):
    """The next value past `edge` on the geometric step from `neighbour`; None where there is none
    (0, or 1 on an integer axis, is as far down as a setting goes)."""
    if edge <= 0 or neighbour <= 0:
        return None
    value = edge * edge / neighbour
    if isinstance(edge, int) and isinstance(neighbour, int):
        value = max(1, round(value))
    else:
        value = float(f"{value:.6g}")  # 0.001, not 0.0009999999999999998
    return None if value == edge else value


@dataclass
class Tuned:
    """The outcome of `search`: the chosen setting, its model on the fit part, and every setting tried."""

    setting: dict
    model: object
    grid: list[dict]  # each setting tried with its "validation" value, in the order tried
    measure: str  # what "validation" is
    widened: dict[str, list] = field(default_factory=dict)  # values tried beyond the configured ones
    at_edge: list[str] = field(default_factory=list)  # axes still chosen at an end of what was tried

    def details(self) -> dict:
        return {
            "chosen": self.setting,
            "grid": self.grid,
            "validation": self.measure,
            "widened": self.widened,
            "at_edge": self.at_edge,
        }


def search(
    name: str,
    axes: dict[str, list],
    fit: Callable[[dict], object],
    measure: Callable[[object], float],
    measure_name: str,
    maximize: bool,
    widen: int,
    limits: dict[str, float] | None = None,
) -> Tuned:
    """Fit every combination of the axes' values and keep the best by the validation measure.

    While the best value of an axis is an end of the values tried on it, one
    value further along the axis (the geometric step of its two outermost
    values) is tried at the best values of the others, up to `widen` more
    fits in all; `limits` caps how far an axis may grow (a compute bound, as
    ALS's cost grows with the cube of its rank): a step that would pass the
    cap tries the cap itself. An axis still at an end
    afterwards is named in `at_edge`. A setting whose fit raises FitFailed
    is kept in the grid with its reason and no validation value; FitFailed
    is raised when no setting could be fitted.
    """
    limits = limits or {}
    sign = 1.0 if maximize else -1.0
    tried = {axis: list(values) for axis, values in axes.items()}
    grid, best = [], None

    def run(setting: dict) -> None:
        nonlocal best
        try:
            model = fit(setting)
        except FitFailed as error:
            grid.append({**setting, "validation": None, "failed": str(error)})
            log.warning("%s %s: not fitted: %s", name, setting, error)
            return
        value = float(measure(model))
        grid.append({**setting, "validation": value})
        log.info("%s %s: validation %s %.4f", name, setting, measure_name, value)
        if best is None or sign * value > sign * best[2]:
            best = (setting, model, value)

    for setting in grid_of(**axes):
        run(setting)
    if best is None:
        raise FitFailed(f"no setting of its grid could be fitted ({grid[-1]['failed']})")
    widened: dict[str, list] = {}

    def edges() -> list[tuple[str, object]]:
        """(axis, next value, or the limit it would pass, or None at the limit) for each axis whose best value
        is an end of those tried."""
        found = []
        for axis, values in tried.items():
            ordered = sorted(values)
            chosen = best[0][axis]
            if len(ordered) < 2 or chosen not in (ordered[0], ordered[-1]):
                continue
            value = _beyond(chosen, ordered[1] if chosen == ordered[0] else ordered[-2])
            if value is not None:
                limit = limits.get(axis, math.inf)
                if value > limit:
                    value = limit if chosen < limit else None
                found.append((axis, value))
        return found

    while widen > 0:
        steps = [(axis, value) for axis, value in edges() if value is not None]
        if not steps:
            break
        for axis, value in steps[:widen]:
            log.info("%s: %s=%s is at the end of %s: trying %s", name, axis, best[0][axis], sorted(tried[axis]), value)
            tried[axis].append(value)
            widened.setdefault(axis, []).append(value)
            run({**best[0], axis: value})
        widen -= len(steps[:widen])
    at_edge = [axis for axis, _ in edges()]
    if at_edge:
        log.warning("%s: %s still at the end of the values tried; widen the grid", name, ", ".join(at_edge))
    return Tuned(best[0], best[1], grid, measure_name, widened, at_edge)
