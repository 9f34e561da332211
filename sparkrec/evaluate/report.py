"""report.md of an evaluation: its metrics.json document as markdown tables, with the verdicts against the baselines."""

from __future__ import annotations

from sparkrec.evaluate.measures import LISTED_POPULARITY, targets
from sparkrec.evaluate.ours import CLASSIFIED_OUTPUT

CLASSIFICATION_COLUMNS = (
    ("accuracy", "accuracy"),
    ("auc", "AUC"),
    ("log_loss", "log loss"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
)


def ranking_columns(k: int) -> tuple[tuple[str, str], ...]:
    names = (
        ("precision", "precision"),
        ("recall", "recall"),
        ("ndcg", "NDCG"),
        ("map", "MAP"),
        ("coverage", "coverage"),
    )
    return tuple((f"{key}@{k}", f"{label}@{k}") for key, label in names)


def _table(results: dict, group: str, columns: tuple[tuple[str, str], ...], lower_is_better: set[str]) -> list[str]:
    """A markdown table, one row per model, the best value of each column in bold."""
    lines = ["| model | " + " | ".join(label for _, label in columns) + " |", "| --- |" + " ---: |" * len(columns)]
    best = {}
    for key, _ in columns:
        values = [r[group][key] for r in results.values()]
        best[key] = min(values) if key in lower_is_better else max(values)
    for name, result in results.items():
        cells = [
            f"**{result[group][key]:.4f}**" if result[group][key] == best[key] else f"{result[group][key]:.4f}"
            for key, _ in columns
        ]
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
        parts = [
            f"{_margin(verdict, results[name], *target)} ({'ahead' if verdict[target[1]] > 0 else 'behind'})"
            for target in targets(k)
        ]
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
        f"its `{results[doc['evaluated_model']]['details']['ranking_output']}` output). "
        f"{split['users_evaluated']:,} users, "
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
            return [
                f"## Top-{k} for users outside the training sample",
                "",
                "None: prepare sampled every user with a rating (held_out_users needs a smaller sample_users).",
                "",
            ]
        return []
    results = {name: result for name, result in doc["models"].items() if "held_out_ranking" in result}
    columns = ranking_columns(k)[:4]
    lines = [
        f"## Top-{k} for users outside the training sample",
        "",
        f"{held['users_with_liked_test_movie']:,} users the model never trained on, with a liked test movie, "
        "each split "
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
