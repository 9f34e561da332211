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

import matplotlib
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.evaluate import als, baselines, ease
from sparkrec.core import metrics, prepare_output, ranking, storage
from sparkrec.prepare import sampling
from sparkrec.score.config import ScoreConfig
from sparkrec.score.keras_io import catalogue_inputs, load_keras_model, scored_model
from sparkrec.score.planning import Inputs, Plan, Tables, choose, read_inputs
from sparkrec.score.scorers import Block, TwoTowerScorer, top_k_lists, watched_positions
from sparkrec.score.users import scoring_input, watched_sets
from sparkrec.score.workers import build_scorer
from sparkrec.core import columns as C
from sparkrec.core import runinfo
from sparkrec.core.runinfo import StageTimer

matplotlib.use("Agg")  # headless: drivers on clusters have no display
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the backend)
from sparkrec.evaluate.config import BASELINES, EvaluateConfig, EvaluateError, HELD_OUT_BASELINES, RANKING_TUNED

# What the evaluation reads of a prepare output beside what scoring reads (sparkrec.score.planning).
SPLITS = ("train", "test")
THRESHOLDED = ("accuracy", "precision", "recall", "f1")
LISTED_POPULARITY = "train_ratings_per_listed_movie"
# The test ratings ask P(like | rated): the like head's question, whichever output ranks.
CLASSIFIED_OUTPUT = C.LIKE


# --- extract ---------------------------------------------------------------


@dataclass
class EvalData:
    """The split as every model sees it: Spark frames to fit and classify, driver-side ranking inputs."""

    train: DataFrame  # every train row: the baselines learn from all of train
    test: DataFrame  # the evaluated users' test rows
    catalogue: pd.DataFrame  # movies/, sorted by movieId: the candidate movies
    movies: DataFrame  # movies/ in Spark
    user_vocab: DataFrame  # vocab/user
    users: pd.DataFrame  # evaluated users: userId, user_idx, watched (their train movieIds)
    labels: pd.DataFrame  # userId, movieId, like of `test`
    relevant: dict[int, set]  # userId -> liked test movieIds
    train_ratings: dict[int, int]  # movieId -> its number of train ratings
    manifest: dict  # prepare's
    held_out: HeldOut | None = None  # users outside the training sample (held_out_users > 0)

    @property
    def vocab_sizes(self) -> dict[str, int]:
        return self.manifest["vocab_sizes"]

    @property
    def like_threshold(self) -> float:
        return float(self.manifest["config"]["like_threshold"])


@dataclass
class HeldOut:
    """Users outside prepare's sample, each split by prepare's own rule into a history and test ratings.

    The model never trained on them: it sees their history only (`users`, user_idx 0).
    """

    users: pd.DataFrame  # userId, user_idx (0), watched and liked: their history's movies
    relevant: dict[int, set]  # userId -> liked test movieIds
    ratings: dict[str, int]  # history / test rating counts


@dataclass
class Deep:
    """Our trained model: the like output for classification, the scoring job's scorer for ranking (plan.output)."""

    model: object  # keras.Model with the like output only
    ranker: object  # the scoring job's scorer: fast (factorized, two-tower) or generic (Keras) path
    plan: Plan
    inputs: Inputs
    batch_size: int
    name: str  # the model's own name (twotower, deep, paper): its row in every table
    histories: pd.DataFrame | None = None  # EvalData.users: what a two-tower model places each user by

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        frame = rows.toPandas()
        if isinstance(self.ranker, TwoTowerScorer):
            probability = self.tower_probabilities(frame)
        else:
            feed = catalogue_inputs(self.model, frame)
            feed[C.USER_IDX] = frame[C.USER_IDX].to_numpy(dtype=np.int32).reshape(-1, 1)
            probability = np.asarray(self.model.predict(feed, batch_size=self.batch_size, verbose=0), dtype=np.float64)
            probability = probability.reshape(-1)
        return pd.DataFrame({
            C.USER_ID: frame[C.USER_ID],
            C.MOVIE_ID: frame[C.MOVIE_ID],
            baselines.PROBABILITY: probability,
            baselines.PREDICTED: (probability >= 0.5).astype(int),
        })

    def tower_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """The like head on each row, the user placed by their train history (as they are ranked)."""
        users = self.histories.set_index(C.USER_ID).loc[np.unique(frame[C.USER_ID])].reset_index()
        _, rows, cols, liked = watched_positions(users, self.ranker.movie_ids)
        block = Block(users[C.USER_IDX].to_numpy(dtype=np.int64), rows, cols, liked)
        vectors = self.ranker.vectors(block)
        at = np.searchsorted(users[C.USER_ID].to_numpy(), frame[C.USER_ID].to_numpy())
        columns = np.searchsorted(self.ranker.movie_ids, frame[C.MOVIE_ID].to_numpy())
        return self.ranker.towers.heads(vectors[at], columns)[0]

    def scorer(self):
        return self.ranker

    def details(self) -> dict:
        return {
            "model_dir": self.inputs.model_dir,
            "model_sha256": self.inputs.model_sha256,
            "scoring_path": self.plan.path,
            "scoring_kernel": self.plan.kernel,
            "ranking_output": self.plan.output,
        }


def load_deep(spark: SparkSession, data_dir: str, model_dir: str, config: EvaluateConfig, timer: StageTimer) -> Deep:
    """The model through the scoring job's checks (files, vocabularies, embedding sizes) and its default scorer."""
    with timer.stage("extract"):
        inputs = read_inputs(spark, data_dir, model_dir)
    with timer.stage("model"):
        defaults = ScoreConfig()
        plan = choose(inputs, defaults.path, defaults.output_name, defaults.generic_batch_pairs)
    loaded = load_keras_model(inputs.model_bytes)
    # A two-tower model classifies through its towers' arrays (Deep.tower_probabilities).
    model = scored_model(loaded, CLASSIFIED_OUTPUT)
    return Deep(model, build_scorer(plan.payload), plan, inputs, config.predict_batch_size, loaded.name)


def evaluated_users(spark: SparkSession, test: DataFrame, config: EvaluateConfig) -> DataFrame:
    """userId of every user with a test rating, or a seeded sample of `eval_users` of them."""
    if config.user_count is None:
        return test.select(C.USER_ID).distinct()
    chosen = sampling.sample_users(test, config.user_count, config.seed)
    schema = T.StructType([T.StructField(C.USER_ID, T.IntegerType(), False)])
    return spark.createDataFrame([(u,) for u in chosen], schema)


def relevant_sets(labels: pd.DataFrame) -> dict[int, set]:
    """userId -> the movies the user liked in test; users without one are absent."""
    liked = labels[labels[C.LIKE] == 1]
    return {int(user): set(group[C.MOVIE_ID].tolist()) for user, group in liked.groupby(C.USER_ID)}


def user_table(train: DataFrame, movies: DataFrame, user_vocab: DataFrame, chosen: DataFrame) -> pd.DataFrame:
    """The evaluated users as the scorer reads them: userId, user_idx, watched (their train movieIds)."""
    watched = watched_sets(train, movies)
    # Every evaluated user is a sampled user (a test rating implies it): the "sample" input holds them all.
    sampled = scoring_input(watched, user_vocab, "sample", 0)
    return sampled.join(chosen, C.USER_ID, "left_semi").orderBy(C.USER_ID).toPandas()


def rating_counts(train: DataFrame) -> dict[int, int]:
    """movieId -> its number of train ratings."""
    return {int(movie): int(n) for movie, n in train.groupBy(C.MOVIE_ID).count().toPandas().itertuples(index=False)}


def held_out_users(spark: SparkSession, interactions: DataFrame, movies: DataFrame, user_vocab: DataFrame,
                   manifest: dict, config: EvaluateConfig) -> HeldOut | None:
    """A seeded sample of `held_out_users` users of interactions/ outside the sample, split as prepare splits.

    None when every user with a rating was sampled.
    """
    outside = interactions.join(user_vocab.select(C.USER_ID), C.USER_ID, "left_anti")
    chosen = sampling.sample_users(outside, config.held_out_users, config.seed)
    if not chosen:
        return None
    schema = T.StructType([T.StructField(C.USER_ID, T.IntegerType(), False)])
    rows = outside.join(F.broadcast(spark.createDataFrame([(u,) for u in chosen], schema)), C.USER_ID, "left_semi")
    prepare = manifest["config"]
    split = sampling.split(rows, prepare["split"], prepare["test_fraction"], prepare["seed"]).cache()
    history, test = sampling.train_rows(split), sampling.test_rows(split)
    labels = test.select(C.USER_ID, C.MOVIE_ID, C.LIKE).toPandas()
    relevant = relevant_sets(labels)
    watched = watched_sets(history, movies)
    users = scoring_input(watched, user_vocab, "all", 0).orderBy(C.USER_ID).toPandas()
    users = users[users[C.USER_ID].isin(relevant)].reset_index(drop=True)
    counts = {"history_ratings": int(history.count()), "test_ratings": len(labels)}
    split.unpersist()
    return HeldOut(users, relevant, counts)


def load_data(spark: SparkSession, inputs: Tables, config: EvaluateConfig) -> EvalData:
    """Read the split beside what scoring read (`inputs`); only the evaluated users' test rows, user table and
    labels reach the driver."""
    data_dir = inputs.data_dir
    prepare_output.require(spark, data_dir, SPLITS, EvaluateError)
    train = spark.read.parquet(f"{data_dir}/train").cache()
    test = spark.read.parquet(f"{data_dir}/test")
    chosen = F.broadcast(evaluated_users(spark, test, config))
    test = test.join(chosen, C.USER_ID, "left_semi").cache()
    movies, user_vocab = inputs.movies, inputs.user_vocab
    labels = test.select(C.USER_ID, C.MOVIE_ID, C.LIKE).toPandas()
    manifest = prepare_output.read_manifest(spark, data_dir, EvaluateError)
    held = held_out_users(spark, inputs.interactions, movies, user_vocab, manifest, config) if config.held_out_users else None
    return EvalData(
        train=train,
        test=test,
        catalogue=inputs.catalogue,
        movies=movies,
        user_vocab=user_vocab,
        users=user_table(train, movies, user_vocab, chosen),
        labels=labels,
        relevant=relevant_sets(labels),
        train_ratings=rating_counts(train),
        manifest=manifest,
        held_out=held,
    )


def extract(spark: SparkSession, data_dir: str, model_dir: str, config: EvaluateConfig,
            timer: StageTimer) -> tuple[EvalData, Deep]:
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


def ranking_carve_out(data: EvalData, config: EvaluateConfig) -> baselines.RankingCarveOut:
    """The validation carve-out of train, laid out as the evaluation ranks: for the ranking baselines' search."""
    fit_part, validation = baselines.carve_validation(data.train, config.validation_fraction, config.seed)
    fit_part = fit_part.cache()
    labels = validation.select(C.USER_ID, C.MOVIE_ID, C.USER_IDX, C.LIKE).toPandas()
    with_liked = validation.filter(F.col(C.LIKE) == 1).select(C.USER_ID).distinct()
    users = user_table(fit_part, data.movies, data.user_vocab, with_liked)
    return baselines.RankingCarveOut(fit_part, labels, users, relevant_sets(labels), config.k, config.block_users)


def fit_baseline(spark: SparkSession, name: str, data: EvalData, config: EvaluateConfig,
                 carve_out: baselines.RankingCarveOut | None) -> baselines.Baseline:
    """The named baseline, fitted on all of train with the settings of `config`; baselines.Skipped says why not."""
    blocks = config.als_blocks or spark.sparkContext.defaultParallelism
    if name == "popular":
        return baselines.fit_popular(data.train, data.catalogue, config.popular_prior)
    if name == "als":
        axes = {"rank": config.als_ranks, "reg_param": config.als_reg_params}
        return als.fit_als(
            data.train, data.catalogue, data.vocab_sizes, axes, config.als_max_iter, config.validation_fraction,
            config.seed, data.like_threshold, blocks, config.widen_steps, config.als_max_rank,
        )
    if name == "als_implicit":
        axes = {"rank": config.als_implicit_ranks, "reg_param": config.als_implicit_reg_params,
                "alpha": config.als_implicit_alphas}
        return als.fit_als_implicit(
            data.train, data.catalogue, data.vocab_sizes, carve_out, axes,
            (config.als_implicit_search_iter, config.als_implicit_max_iter), config.seed, blocks,
            config.als_implicit_signal, config.widen_steps, config.als_max_rank,
        )
    if name == "ease":
        return ease.fit_ease(data.train, data.catalogue, data.vocab_sizes, carve_out, config.ease_lambdas,
                             config.ease_max_items, config.widen_steps)
    return baselines.fit_logistic(
        spark, data.train, data.catalogue, data.vocab_sizes, config.logistic_reg_params,
        config.logistic_max_iter, config.validation_fraction, config.seed, config.widen_steps,
    )


def classification(labels: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """Metrics of one model's predictions on the labelled rows (every row must be predicted).

    AUC and log loss read P(like); the thresholded metrics read the model's
    own decision, which for ALS is the predicted rating against the like
    threshold rather than its calibrated probability against 0.5.
    """
    keys = [C.USER_ID, C.MOVIE_ID]
    joined = labels.merge(predictions, on=keys, how="left", validate="one_to_one")
    if joined[baselines.PROBABILITY].isna().any():
        raise EvaluateError(f"{int(joined[baselines.PROBABILITY].isna().sum())} test rows have no prediction")
    y = joined[C.LIKE].to_numpy()
    report = metrics.classification_report(y, joined[baselines.PROBABILITY].to_numpy())
    decided = joined[baselines.PREDICTED].to_numpy()
    report.update({name: getattr(metrics, name)(y, decided) for name in THRESHOLDED})
    return report


def ranking_quality(lists: dict[int, np.ndarray], data: EvalData, k: int, relevant: dict | None = None) -> dict:
    """The @k metrics of one model's lists (against `relevant`, by default the test split's), its catalogue
    coverage and how mainstream its lists are."""
    quality = ranking.mean_ranking_metrics(lists, data.relevant if relevant is None else relevant, k)
    quality[f"coverage@{k}"] = ranking.catalogue_coverage(lists, len(data.catalogue), k)
    quality[f"{LISTED_POPULARITY}@{k}"] = ranking.mean_popularity(lists, data.train_ratings, k)
    return quality


def measure(model, data: EvalData, config: EvaluateConfig, timer: StageTimer) -> dict:
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
        "held_out": None if data.held_out is None else {
            "users_with_liked_test_movie": len(data.held_out.users), **data.held_out.ratings,
        },
    }


@dataclass
class Evaluated:
    """What `transform` hands to `document`."""

    models: dict[str, dict]  # name -> classification, ranking, details; ours first
    skipped: dict[str, str]  # baseline -> why it was not fitted


def transform(spark: SparkSession, data: EvalData, deep: Deep, config: EvaluateConfig, timer: StageTimer,
              checkpoint_dir: str) -> Evaluated:
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
                except baselines.Skipped as reason:
                    skipped[name] = str(reason)
                    continue
            models[name] = measure(model, data, config, timer)
    return Evaluated(models, skipped)


def targets(k: int) -> tuple[tuple[str, str, str], ...]:
    """(group, metric, label) of the two measures every model is compared on."""
    return ("classification", "accuracy", "accuracy"), ("ranking", f"ndcg@{k}", f"NDCG@{k}")


def comparison(results: dict[str, dict], k: int) -> dict[str, dict]:
    """Our model (the first of `results`) minus each baseline on the two target metrics, and whether it is ahead on both."""
    ours, *others = results
    verdicts = {}
    for name in others:
        margins = {metric: results[ours][group][metric] - results[name][group][metric] for group, metric, _ in targets(k)}
        verdicts[name] = {**margins, "better_on_both": all(m > 0 for m in margins.values())}
    return verdicts


# --- load ------------------------------------------------------------------

REPORT = "report.md"
METRICS = "metrics.json"
CHART = "comparison.png"


def document(spark: SparkSession, evaluated: Evaluated, data: EvalData, config: EvaluateConfig,
             paths: dict[str, str], timer: StageTimer) -> dict:
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


CLASSIFICATION_COLUMNS = (("accuracy", "accuracy"), ("auc", "AUC"), ("log_loss", "log loss"),
                          ("precision", "precision"), ("recall", "recall"), ("f1", "F1"))


def ranking_columns(k: int) -> tuple[tuple[str, str], ...]:
    names = (("precision", "precision"), ("recall", "recall"), ("ndcg", "NDCG"), ("map", "MAP"), ("coverage", "coverage"))
    return tuple((f"{key}@{k}", f"{label}@{k}") for key, label in names)


def _table(results: dict, group: str, columns: tuple[tuple[str, str], ...], lower_is_better: set[str]) -> list[str]:
    """A markdown table, one row per model, the best value of each column in bold."""
    lines = ["| model | " + " | ".join(label for _, label in columns) + " |", "| --- |" + " ---: |" * len(columns)]
    best = {}
    for key, _ in columns:
        values = [r[group][key] for r in results.values()]
        best[key] = min(values) if key in lower_is_better else max(values)
    for name, result in results.items():
        cells = [f"**{result[group][key]:.4f}**" if result[group][key] == best[key] else f"{result[group][key]:.4f}"
                 for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _popularity_line(results: dict, k: int) -> str:
    return ", ".join(f"{name} {result['ranking'][f'{LISTED_POPULARITY}@{k}']:.1f}" for name, result in results.items())


def _margin(verdict: dict, baseline: dict, group: str, metric: str, label: str) -> str:
    margin, theirs = verdict[metric], baseline[group][metric]
    relative = f", {margin / theirs:+.0%}" if theirs else ""
    return f"{label} {margin:+.4f}{relative}"


def _verdict_lines(ours: str, verdicts: dict, results: dict, k: int) -> list[str]:
    """A plain sentence of which baselines our model is behind and by how much, then every margin."""
    behind = []
    for name, verdict in verdicts.items():
        lost = [_margin(verdict, results[name], *target) for target in targets(k) if verdict[target[1]] <= 0]
        if lost:
            behind.append(f"{name} ({'; '.join(lost)})")
    if behind:
        lines = [f"**`{ours}` is behind** {', '.join(behind)}.", ""]
    else:
        lines = [f"`{ours}` is ahead of every baseline on accuracy and NDCG@{k}.", ""]
    for name, verdict in verdicts.items():
        parts = [f"{_margin(verdict, results[name], *target)} ({'ahead' if verdict[target[1]] > 0 else 'behind'})"
                 for target in targets(k)]
        lines.append(f"- vs {name}: " + ", ".join(parts))
    return lines


def _grid_lines(results: dict) -> list[str]:
    lines = []
    for name, result in results.items():
        details = result["details"]
        if not details.get("grid"):
            continue
        tried = "; ".join(
            ", ".join(f"{key}={value}" for key, value in row.items() if key not in ("validation", "failed"))
            + (f": {row['validation']:.4f}" if row["validation"] is not None else ": not fitted")
            for row in details["grid"]
        )
        failures = sorted({row["failed"] for row in details["grid"] if row["validation"] is None})
        notes = [f"widened to {details['widened']}"] if details["widened"] else []
        notes += [f"not fitted: {reason}" for reason in failures]
        if details["at_edge"]:
            notes.append(f"**still at the end of the values tried: {', '.join(details['at_edge'])}**")
        extra = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"- {name}: chosen {details['chosen']} by validation {details['validation']}{extra}, from {tried}")
    return lines


def report(doc: dict) -> str:
    """report.md: the two tables, our model's margins over each baseline, the baselines' grids."""
    k, split, results = doc["k"], doc["split"], doc["models"]
    lines = [
        "# Recommendation quality",
        "",
        f"Data `{doc['data']}`, model `{doc['model']}` (classifies with its `{CLASSIFIED_OUTPUT}` output, ranks with "
        f"its `{results[doc['evaluated_model']]['details']['ranking_output']}` output). {split['users_evaluated']:,} users, "
        f"{split['test_rows']:,} test ratings ({split['test_like_rate']:.1%} liked), "
        f"{split['catalogue_movies']:,} catalogue movies. Majority-class accuracy {split['majority_accuracy']:.4f}.",
        "",
        "## Like classification of the test ratings",
        "",
        *_table(results, "classification", CLASSIFICATION_COLUMNS, {"log_loss"}),
        "",
        f"## Top-{k} of the movies unrated in train, against the liked test movies",
        "",
        f"Averaged over the {split['users_with_liked_test_movie']:,} users with a liked test movie; "
        "coverage is the share of the catalogue in any list.",
        "",
        *_table(results, "ranking", ranking_columns(k), set()),
        "",
        f"Mean train ratings of a listed movie (how mainstream the lists are): {_popularity_line(results, k)}.",
        "",
        *_held_out_lines(doc),
        f"## `{doc['evaluated_model']}` minus each baseline",
        "",
        *_verdict_lines(doc["evaluated_model"], doc["model_minus_baseline"], results, k),
        "",
        "## Baseline settings (validation carve-out of train)",
        "",
        *_grid_lines(results),
        *[f"- {name}: **skipped**, {reason}" for name, reason in doc["skipped"].items()],
        "",
    ]
    return "\n".join(lines)


def _held_out_lines(doc: dict) -> list[str]:
    """The held-out users' ranking table, each model's trained-user NDCG beside it; nothing when not asked for."""
    held, k = doc["split"]["held_out"], doc["k"]
    if held is None:
        if doc["config"]["held_out_users"]:
            return [f"## Top-{k} for users outside the training sample", "",
                    "None: prepare sampled every user with a rating (held_out_users needs a smaller sample_users).", ""]
        return []
    results = {name: result for name, result in doc["models"].items() if "held_out_ranking" in result}
    columns = ranking_columns(k)[:4]
    lines = [
        f"## Top-{k} for users outside the training sample",
        "",
        f"{held['users_with_liked_test_movie']:,} users the model never trained on, with a liked test movie, each split "
        f"by prepare's rule into a history ({held['history_ratings']:,} ratings) and test ({held['test_ratings']:,}). "
        "Each model ranks the catalogue minus the user's history, knowing only that history; the last column is the "
        "same model's NDCG on the trained users above.",
        "",
        "| model | " + " | ".join(label for _, label in columns) + f" | NDCG@{k}, trained users |",
        "| --- |" + " ---: |" * (len(columns) + 1),
    ]
    for name, result in results.items():
        cells = [f"{result['held_out_ranking'][key]:.4f}" for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result['ranking'][f'ndcg@{k}']:.4f} |")
    return lines + [""]


def _bars(axis, results: dict, group: str, columns: tuple[tuple[str, str], ...], title: str) -> None:
    """One group of bars per metric, one bar per model."""
    width = 0.8 / len(results)
    positions = np.arange(len(columns))
    for i, (name, result) in enumerate(results.items()):
        values = [result[group][key] for key, _ in columns]
        axis.bar(positions + (i - (len(results) - 1) / 2) * width, values, width, label=name)
    axis.set_xticks(positions, [label for _, label in columns], rotation=30, ha="right")
    axis.set_title(title)


def chart(doc: dict, path: str) -> None:
    """Grouped bars per metric per model: classification (log loss left out) and ranking, each on its own scale."""
    k, results = doc["k"], doc["models"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    kept = tuple(column for column in CLASSIFICATION_COLUMNS if column[0] != "log_loss")
    _bars(left, results, "classification", kept, "Like classification of the test ratings")
    left.set_ylim(0, 1)
    _bars(right, results, "ranking", ranking_columns(k), f"Top-{k} ranking against liked test movies")
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(results))
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def load(spark: SparkSession, doc: dict, staging: str) -> None:
    """Write metrics.json, report.md and the chart into `staging`."""
    # Insertion order, not sorted keys: the models stay in report order, ours first.
    runinfo.write_json(spark, f"{staging}/{METRICS}", doc)
    storage.write_text(spark, f"{staging}/{REPORT}", report(doc))
    with tempfile.TemporaryDirectory() as local:
        chart(doc, os.path.join(local, CHART))
        storage.copy_from_local(spark, os.path.join(local, CHART), f"{staging}/{CHART}")
