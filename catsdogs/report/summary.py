"""The summary markdown: the models compared with each other and with the tutorial, data counts, params.

Pure text rendering from the JSON reports the stages write; no I/O here.
"""

from __future__ import annotations

import yaml

# The tutorial's validation accuracies (20,000 training and 5,000 validation images, 150x150).
TUTORIAL_ACCURACY = {"scratch": 0.894, "top": 0.907}
MODEL_TITLES = {
    "scratch": "Scratch CNN",
    "top": "VGG16 bottleneck + top classifier",
    "finetune": "VGG16 fine-tuned with the top classifier",
    "ensemble": "Ensemble: mean P(dog) of the models above",
}
# The params sections (or single keys) that produce the models and these reports.
SUMMARY_PARAMS = (
    "common",
    "runtime",
    "images",
    "download.source",
    "split",
    "train_scratch",
    "recipes",  # only the recipe train_scratch.recipe names
    "vgg16",
    "train_top",
    "finetune",
    "prediction",
    "reports",
)


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def model_table(metrics: dict, training: dict[str, dict]) -> list[str]:
    """Markdown rows comparing the models (validation figures) with the tutorial's accuracy."""
    lines = [
        "| model | accuracy | tutorial | log loss | ROC AUC | precision cat / dog | recall cat / dog | epochs run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, values in metrics.items():
        title = MODEL_TITLES.get(name, name)
        run = training.get(name, {})
        if run.get("skipped"):
            title = "VGG16 + top classifier on images (fine-tuning skipped: finetune.epochs 0)"
        if run.get("recipe"):
            title += f" ({run['recipe']} recipe)"
        tutorial = TUTORIAL_ACCURACY.get(name)
        precision, recall = values["precision"], values["recall"]
        lines.append(
            f"| {title} | {_percent(values['accuracy'])} | {_percent(tutorial) if tutorial else '-'} "
            f"| {_number(values['log_loss'])} | {_number(values['roc_auc'])} "
            f"| {_number(precision['cat'], 3)} / {_number(precision['dog'], 3)} "
            f"| {_number(recall['cat'], 3)} / {_number(recall['dog'], 3)} | {run.get('epochs_run', 'n/a')} |"
        )
    return lines


def chance_warnings(training: dict[str, dict]) -> list[str]:
    """One bold warning line (and a blank line) per training stage whose run ended within noise of chance."""
    lines = []
    for name, run in training.items():
        if run.get("at_chance"):
            lines += [
                f"**Warning: {MODEL_TITLES.get(name, name)} did not learn**: its best validation accuracy "
                f"({_percent(run.get('best_val_accuracy'))}) is within noise of chance "
                f"({_percent(run.get('chance_accuracy'))}); see the stage's log for the likely causes.",
                "",
            ]
    return lines


def data_table(split: dict) -> list[str]:
    """Markdown rows of the split's counts (reports/data/split.json)."""
    lines = ["| split | cats | dogs | total |", "|---|---:|---:|---:|"]
    for name in ("train", "validation"):
        counts = split.get(name, {})
        lines.append(f"| {name} | {counts.get('cats', 'n/a')} | {counts.get('dogs', 'n/a')} | {counts.get('total', 'n/a')} |")
    return lines


def read_summary_params(params) -> dict:
    """The params in :data:`SUMMARY_PARAMS` read from a validated Params model (and nothing else), nested as in
    params.yaml: the reports stage declares exactly these in dvc.yaml."""
    selected: dict = {}
    for key in SUMMARY_PARAMS:
        section, _, leaf = key.partition(".")
        model = getattr(params, section)
        if section == "recipes":
            recipe = params.train_scratch.recipe
            selected[section] = {recipe: model[recipe]} if recipe in model else {}
        elif leaf:
            selected.setdefault(section, {})[leaf] = model.model_dump(mode="json", include={leaf})[leaf]
        else:
            selected[section] = model.model_dump(mode="json")
    return selected


def render_summary(
    metrics: dict, training: dict[str, dict], split: dict, params: dict, best: str, figures: list[str], clip: float
) -> str:
    """The whole summary.md text (deterministic for the same inputs); ``params`` as :func:`read_summary_params` gives."""
    validation = split.get("validation", {})
    files = split.get("files", {})
    lines = [
        "# catsdogs: results",
        "",
        f"Validation split: {validation.get('total', 'n/a')} images. P(dog) clipped to "
        f"[{clip}, {1 - clip:g}] before scoring; log loss is the Kaggle competition's metric.",
        "",
        "## Models",
        "",
        *model_table(metrics, training),
        "",
        *chance_warnings(training),
        f"Best model by validation log loss: **{MODEL_TITLES.get(best, best)}** (`{best}`); "
        "the submission stage uses it.",
        "",
        "The tutorial reported 89.4% validation accuracy for the scratch CNN and 90.7% for the",
        "VGG16 bottleneck model (20,000 training and 5,000 validation images at 150x150).",
        "",
        "## Data",
        "",
        *data_table(split),
        "",
        f"Files found: {files.get('found', 'n/a')}, dropped as unreadable or too small: "
        f"{files.get('dropped', 'n/a')}, skipped (not cat.N/dog.N): {files.get('skipped', 'n/a')}.",
        "",
        "## Figures",
        "",
        *[f"- [{name}]({name})" for name in figures],
        "",
        "## Params",
        "",
        "```yaml",
        yaml.safe_dump(params, sort_keys=False, default_flow_style=None).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
