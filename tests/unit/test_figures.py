"""Tests for the reports stage: every figure is a valid PNG, reproducible byte for byte; the summary."""

from __future__ import annotations

import contextlib
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from catsdogs.report import plotting
from tests.tiny_models import make_workspace

EXPECTED_FIGURES = {
    "scratch_loss.png",
    "scratch_accuracy.png",
    "top_loss.png",
    "top_accuracy.png",
    "finetune_loss.png",
    "finetune_accuracy.png",
    "confusion_matrices.png",
    "roc_curves.png",
    "worst_misclassified.png",
    "convolution_walkthrough.png",
    "scratch_first_layer.png",
}


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A tiny workspace after evaluate and reports ran; the first run's figure bytes kept aside."""
    from catsdogs.stages import evaluate, reports

    root = make_workspace(tmp_path_factory.mktemp("reports"))
    with contextlib.chdir(root):  # the stages read params.yaml and write their outputs in the working directory
        evaluate.main()
        reports.main()
        first = {path.name: path.read_bytes() for path in (root / "reports/figures").iterdir()}
        first["summary.md"] = (root / "reports/summary.md").read_bytes()
        shutil.rmtree(root / "reports/figures")
        reports.main()
    return root, first


def test_every_figure_is_a_valid_png_of_some_size(reported):
    root, _ = reported
    figures = root / "reports/figures"
    assert {path.name for path in figures.iterdir()} == EXPECTED_FIGURES
    for path in figures.iterdir():
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"
        with Image.open(path) as image:
            width, height = image.size
            assert width >= 300 and height >= 150, path.name
        assert path.stat().st_size > 5_000, path.name


def test_rendering_twice_gives_identical_bytes(reported):
    root, first = reported
    second = {path.name: path.read_bytes() for path in (root / "reports/figures").iterdir()}
    second["summary.md"] = (root / "reports/summary.md").read_bytes()
    assert second.keys() == first.keys()
    changed = [name for name in first if first[name] != second[name]]
    assert changed == []


def test_pngs_carry_no_software_version(reported):
    root, _ = reported
    data = (root / "reports/figures/roc_curves.png").read_bytes()
    assert b"matplotlib" not in data.lower()


def test_summary_compares_models_with_the_tutorial(reported):
    root, _ = reported
    summary = (root / "reports/summary.md").read_text()
    assert "| Scratch CNN |" in summary and "| 89.4% |" in summary
    assert "| VGG16 bottleneck + top classifier |" in summary and "| 90.7% |" in summary
    assert "VGG16 fine-tuned" in summary
    assert "| validation | 6 | 6 | 12 |" in summary
    assert "image_size: 32" in summary  # the params that produced the figures
    assert "(figures/roc_curves.png)" in summary
    assert summary.index("| Scratch CNN") < summary.index("| VGG16 bottleneck") < summary.index("| VGG16 fine-tuned")


def test_missing_history_fails_with_a_clear_error(tmp_path, monkeypatch):
    from catsdogs.stages.reports import main

    root = make_workspace(tmp_path, with_test=False)
    (root / "reports/top/history.csv").unlink()
    monkeypatch.chdir(root)
    with pytest.raises(ValueError, match=r"reports/top/history.csv not found .*train_top"):
        main()


def test_history_figure_needs_its_columns():
    history = pd.DataFrame({"epoch": [1, 2], "loss": [0.9, 0.5]})
    with pytest.raises(ValueError, match="val_loss"):
        plotting.history_figure(history, "loss", "title")


def test_skipped_finetune_draws_no_curves(tmp_path):
    from catsdogs.report.figures import history_figures

    empty = pd.DataFrame(columns=["epoch", "loss", "accuracy", "val_loss", "val_accuracy"])
    history = pd.DataFrame({"epoch": [1], "loss": [0.7], "accuracy": [0.5], "val_loss": [0.8], "val_accuracy": [0.4]})
    written = history_figures({"scratch": history, "finetune": empty}, tmp_path)
    assert sorted(path.name for path in written) == ["scratch_accuracy.png", "scratch_loss.png"]


def test_worst_misclassified_are_the_most_confident_mistakes():
    from catsdogs.report.figures import worst_misclassified

    table = pd.DataFrame(
        {
            "file": ["cats/a.jpg", "cats/b.jpg", "dogs/c.jpg", "dogs/d.jpg", "dogs/e.jpg"],
            "label": [0, 0, 1, 1, 1],
            "actual": ["cat", "cat", "dog", "dog", "dog"],
            "p_m": [0.7, 0.2, 0.01, 0.4, 0.9],
            "m_predicted": ["dog", "cat", "cat", "cat", "dog"],
        }
    )
    worst = worst_misclassified(table, "m", 2)
    assert worst["file"].tolist() == ["dogs/c.jpg", "cats/a.jpg"]  # losses: -log .01 > -log .3 > -log .4


def test_convolution_walkthrough_filters():
    ramp = np.tile(np.arange(16, dtype=np.float64) * 10, (16, 1))  # brightness grows left to right
    panels = plotting.convolution_walkthrough(ramp)
    assert list(panels) == [
        "original",
        "box blur 3x3 (scipy convolve2d)",
        "box blur 8x8 (cv2.filter2D)",
        "Sobel x (cv2.Sobel)",
        "Sobel y (cv2.Sobel)",
        "gradient magnitude",
    ]
    # A box blur of a linear ramp leaves its interior unchanged.
    assert np.allclose(panels["box blur 3x3 (scipy convolve2d)"][4:12, 4:12], ramp[4:12, 4:12])
    # Sobel x of a ramp of slope 10: (1, 2, 1) x (-1, 0, 1) -> 4 * 2 * 10 = 80 inside; Sobel y is 0.
    assert np.allclose(panels["Sobel x (cv2.Sobel)"][2:-2, 2:-2], 80)
    assert np.allclose(panels["Sobel y (cv2.Sobel)"][2:-2, 2:-2], 0)
    assert np.allclose(panels["gradient magnitude"][2:-2, 2:-2], 80)


def test_first_conv_maps_come_from_the_first_convolution():
    from catsdogs.report.figures import first_conv_maps
    from tests.tiny_models import tiny_image_model

    model = tiny_image_model(0)
    image = np.random.default_rng(0).uniform(0, 255, size=(32, 32, 3)).astype(np.float32)
    maps = first_conv_maps(model, image)
    assert maps.shape == (32, 32, 4)
    conv = model.get_layer("conv1")
    kernel, bias = (np.asarray(weight) for weight in conv.weights)
    # One interior output by hand: ReLU(sum(kernel * rescaled patch) + bias).
    patch = image[9:12, 9:12, :] / 255.0
    expected = np.maximum(np.einsum("ijc,ijcf->f", patch, kernel) + bias, 0)
    assert np.allclose(maps[10, 10], expected, atol=1e-5)


def test_gallery_without_mistakes_still_renders(tmp_path):
    from catsdogs.report.figures import gallery_figure_file

    table = pd.DataFrame(
        {"file": ["cats/a.jpg"], "label": [0], "actual": ["cat"], "p_m": [0.1], "m_predicted": ["cat"]}
    )
    path = gallery_figure_file(table, tmp_path, "m", 4, tmp_path)
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_summary_says_when_fine_tuning_was_skipped():
    from catsdogs.report.summary import render_summary

    values = {
        "accuracy": 0.9, "log_loss": 0.25, "roc_auc": 0.95,
        "precision": {"cat": 0.9, "dog": 0.9}, "recall": {"cat": 0.9, "dog": 0.9},
    }
    text = render_summary(
        {"top": values, "finetune": values}, {"finetune": {"skipped": True, "epochs_run": 0}},
        {"validation": {"total": 10}}, {"common": {"seed": 1}}, "top", [], 0.005,
    )
    assert "| VGG16 + top classifier on images (fine-tuning skipped: finetune.epochs 0) | 90.0% | - | 0.2500 |" in text
    assert "| VGG16 bottleneck + top classifier | 90.0% | 90.7% |" in text
