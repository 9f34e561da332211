"""Evaluation: our model (deep, twotower or paper) against the baselines on the test split, in one run.

Two questions are asked of every model, on the same rows:

- like classification of the test ratings: accuracy, AUC, log loss, precision,
  recall, F1 (`sparkrec.core.metrics`);
- top-K ranking: for each evaluated user, the K best catalogue movies the user
  did not rate in train (test movies stay candidates), scored against the
  user's liked test movies: precision, recall, NDCG and MAP at K, and the
  catalogue coverage of all lists together (`sparkrec.core.ranking`).

Top-K lists of every model come from the scoring job's selection code
(`recommend_batch`), the deep model through the scoring job's own
scorer and its default output choice (`rank` when the model has it); the deep
model's classification always reads its `like` output. `jobs/evaluate.py`
calls extract -> transform -> load.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.core import runinfo, storage
from sparkrec.core.runinfo import StageTimer
from sparkrec.evaluate import als, ease
from sparkrec.evaluate.chart import chart
from sparkrec.evaluate.config import BASELINES, HELD_OUT_BASELINES, RANKING_TUNED, EvaluateConfig, EvaluateError
from sparkrec.evaluate.data import EvalData, load_data, relevant_sets, user_table
from sparkrec.evaluate.logistic import fit_logistic
from sparkrec.evaluate.measures import classification, comparison, ranking_quality
from sparkrec.evaluate.model import EvaluatedModel
from sparkrec.evaluate.ours import Deep, load_deep
from sparkrec.evaluate.popular import fit_popular
from sparkrec.evaluate.report import report
from sparkrec.evaluate.tuning import RankingCarveOut, Skipped, carve_validation
from sparkrec.score.scorers import top_k_lists

# --- extract ---------------------------------------------------------------


def extract(
    spark: SparkSession, data_dir: str, model_dir: str, config: EvaluateConfig, timer: StageTimer
) -> tuple[EvalData, Deep]:
    """Check and load the model first (cheap, and the likeliest mistake), then the split."""
    data_dir, model_dir = data_dir.rstrip("/"), model_dir.rstrip("/")
    deep = load_deep(spark, data_dir, model_dir, config, timer)
    with timer.stage("split"):
        data = load_data(spark, deep.inputs, config)
        timer.count("split", len(data.labels))
    deep.histories = data.users
    for table, rows in (("train", len(data.train_ratings)), ("test", len(data.labels))):
        if not rows:
            raise EvaluateError(f"{data_dir}/{table} has no rows: nothing to evaluate")
    if not data.relevant:
        raise EvaluateError(f"no evaluated user has a liked test movie in {data_dir}: ranking metrics are undefined")
    return data, deep


# --- transform -------------------------------------------------------------


def ranking_carve_out(data: EvalData, config: EvaluateConfig) -> RankingCarveOut:
    """The validation carve-out of train, laid out as the evaluation ranks: for the ranking baselines' search."""
    fit_part, validation = carve_validation(data.train, config.validation_fraction, config.seed)
    fit_part = fit_part.cache()
    labels = validation.select(C.USER_ID, C.MOVIE_ID, C.USER_IDX, C.LIKE).toPandas()
    with_liked = validation.filter(F.col(C.LIKE) == 1).select(C.USER_ID).distinct()
    users = user_table(fit_part, data.movies, data.user_vocab, with_liked)
    return RankingCarveOut(fit_part, labels, users, relevant_sets(labels), config.k, config.block_users)


def fit_baseline(
    spark: SparkSession, name: str, data: EvalData, config: EvaluateConfig, carve_out: RankingCarveOut | None
) -> EvaluatedModel:
    """The named baseline, fitted on all of train with the settings of `config`; Skipped says why not."""
    blocks = config.als_blocks or spark.sparkContext.defaultParallelism
    if name == "popular":
        return fit_popular(data.train, data.catalogue, config.popular_prior)
    if name == "als":
        axes = {"rank": config.als_ranks, "reg_param": config.als_reg_params}
        return als.fit_als(
            data.train,
            data.catalogue,
            data.vocab_sizes,
            axes,
            config.als_max_iter,
            config.validation_fraction,
            config.seed,
            data.like_threshold,
            blocks,
            config.widen_steps,
            config.als_max_rank,
        )
    if name == "als_implicit":
        axes = {
            "rank": config.als_implicit_ranks,
            "reg_param": config.als_implicit_reg_params,
            "alpha": config.als_implicit_alphas,
        }
        return als.fit_als_implicit(
            data.train,
            data.catalogue,
            data.vocab_sizes,
            carve_out,
            axes,
            (config.als_implicit_search_iter, config.als_implicit_max_iter),
            config.seed,
            blocks,
            config.als_implicit_signal,
            config.widen_steps,
            config.als_max_rank,
        )
    if name == "ease":
        return ease.fit_ease(
            data.train,
            data.catalogue,
            data.vocab_sizes,
            carve_out,
            config.ease_lambdas,
            config.ease_dislike_weights,
            config.ease_max_items,
            config.widen_steps,
        )
    return fit_logistic(
        spark,
        data.train,
        data.catalogue,
        data.vocab_sizes,
        config.logistic_reg_params,
        config.logistic_max_iter,
        config.validation_fraction,
        config.seed,
        config.widen_steps,
    )


def measure(model: EvaluatedModel, data: EvalData, config: EvaluateConfig, timer: StageTimer) -> dict:
    """Classification and ranking metrics of one fitted model, timed as `<name>_classify` / `<name>_rank`."""
    with timer.stage(f"{model.name}_classify"):
        classified = classification(data.labels, model.classify(data.test))
    with timer.stage(f"{model.name}_rank"):
        lists = top_k_lists(model.scorer(), data.users, config.k, config.block_users)
        ranked = ranking_quality(lists, data, config.k)
    measured = {"classification": classified, "ranking": ranked, "details": model.details()}
    held = data.held_out
    if held is not None and (model.name not in BASELINES or model.name in HELD_OUT_BASELINES):
        with timer.stage(f"{model.name}_held_out"):
            lists = top_k_lists(model.scorer(), held.users, config.k, config.block_users)
            measured["held_out_ranking"] = ranking_quality(lists, data, config.k, held.relevant)
    return measured


def split_summary(data: EvalData) -> dict:
    """Sizes of what was evaluated, and the accuracy of always predicting train's majority class."""
    train_rate = float(data.train.agg(F.avg(C.LIKE)).first()[0])
    majority = 1 if train_rate >= 0.5 else 0
    return {
        "users_evaluated": len(data.users),
        "users_with_liked_test_movie": len(data.relevant),
        "test_rows": len(data.labels),
        "catalogue_movies": len(data.catalogue),
        "train_like_rate": train_rate,
        "test_like_rate": float(data.labels[C.LIKE].mean()),
        "majority_accuracy": float((data.labels[C.LIKE] == majority).mean()),
        "held_out": None
        if data.held_out is None
        else {
            "users_with_liked_test_movie": len(data.held_out.users),
            **data.held_out.ratings,
        },
    }


@dataclass
class Evaluated:
    """What `transform` hands to `document`."""

    models: dict[str, dict]  # name -> classification, ranking, details; ours first
    skipped: dict[str, str]  # baseline -> why it was not fitted


def transform(
    spark: SparkSession, data: EvalData, deep: Deep, config: EvaluateConfig, timer: StageTimer, checkpoint_dir: str
) -> Evaluated:
    """Every model's metrics, ours first; each baseline is fitted on train just before it is measured.

    ALS checkpoints into `checkpoint_dir` (on the output's filesystem, so that
    every executor reaches it), removed once the baselines are fitted.
    """
    models, skipped = {deep.name: measure(deep, data, config, timer)}, {}
    carve_out = None
    if set(config.baselines) & set(RANKING_TUNED):
        with timer.stage("carve_out"):
            carve_out = ranking_carve_out(data, config)
            timer.count("carve_out", len(carve_out.validation))
    with als.checkpoints(spark, checkpoint_dir):
        for name in config.baselines:
            with timer.stage(f"{name}_fit"):
                try:
                    model = fit_baseline(spark, name, data, config, carve_out)
                except Skipped as reason:
                    skipped[name] = str(reason)
                    continue
            models[name] = measure(model, data, config, timer)
    return Evaluated(models, skipped)


# --- load ------------------------------------------------------------------

REPORT = "report.md"
METRICS = "metrics.json"
CHART = "comparison.png"


def document(
    spark: SparkSession,
    evaluated: Evaluated,
    data: EvalData,
    config: EvaluateConfig,
    paths: dict[str, str],
    timer: StageTimer,
) -> dict:
    """metrics.json: every number, the resolved settings, the inputs and the versions."""
    return {
        **runinfo.run_record("evaluate", config, timer.seconds, spark),
        **paths,
        "k": config.k,
        "split": split_summary(data),
        "models": evaluated.models,
        "skipped": evaluated.skipped,
        "evaluated_model": next(iter(evaluated.models)),
        "model_minus_baseline": comparison(evaluated.models, config.k),
        "prepare_config": data.manifest.get("config"),
        "seed": config.seed,
    }


def load(spark: SparkSession, doc: dict, staging: str) -> None:
    """Write metrics.json, report.md and the chart into `staging`."""
    # Insertion order, not sorted keys: the models stay in report order, ours first.
    runinfo.write_json(spark, f"{staging}/{METRICS}", doc)
    storage.write_text(spark, f"{staging}/{REPORT}", report(doc))
    with tempfile.TemporaryDirectory() as local:
        chart(doc, os.path.join(local, CHART))
        storage.copy_from_local(spark, os.path.join(local, CHART), f"{staging}/{CHART}")
