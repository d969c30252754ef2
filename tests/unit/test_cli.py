"""Tests for ``catsdogs predict``: table and CSV output, bad files, exit codes, model choice."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from catsdogs.cli import EXIT_ERROR, EXIT_FILE_FAILED, EXIT_OK, main
from catsdogs.sources.synthetic import write_kaggle_test
from tests.tiny_models import make_workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny project folder (params, models) and a folder of 4 test images, one of them corrupt."""
    root = make_workspace(tmp_path_factory.mktemp("cli"), with_test=False)
    images = root / "images"
    write_kaggle_test(images, 3, 32, seed=9)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (images / "notes.txt").write_text("ignored: not an image suffix")
    (root / "reports/evaluate").mkdir(parents=True)
    metrics = {"scratch": {"log_loss": 0.6}, "top": {"log_loss": 0.9}, "finetune": {"log_loss": 0.3}}
    (root / "reports/evaluate/metrics.json").write_text(json.dumps(metrics))
    return root


def test_folder_with_a_corrupt_file_prints_the_others_and_exits_2(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    code = main(["predict", "images", "--model", "scratch"])
    out, err = capsys.readouterr()
    assert code == EXIT_FILE_FAILED == 2
    lines = out.splitlines()
    assert lines[0].split() == ["file", "label", "p_dog"]
    assert [line.split()[0] for line in lines[1:]] == ["images/1.jpg", "images/2.jpg", "images/3.jpg"]
    for line in lines[1:]:
        _, label, probability = line.split()
        assert label in ("cat", "dog")
        assert (label == "dog") == (float(probability) >= 0.5)
    assert "cannot read images/broken.jpg" in err
    assert "1 of 4 files failed" in err


def test_csv_output_and_exit_0_when_all_files_read(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    code = main(["predict", "images/2.jpg", "images/1.jpg", "--model", "models/scratch.keras", "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["file"] for row in rows] == ["images/2.jpg", "images/1.jpg"]  # the order given
    assert all(0.005 <= float(row["p_dog"]) <= 0.995 for row in rows)
    assert err == ""


def test_named_model_and_path_agree(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    main(["predict", "images/1.jpg", "--model", "finetune", "--format", "csv"])
    by_name = capsys.readouterr().out
    main(["predict", "images/1.jpg", "--model", "models/finetune.keras", "--format", "csv"])
    assert capsys.readouterr().out == by_name
    main(["predict", "images/1.jpg", "--format", "csv"])  # best: finetune has the lowest log loss
    assert capsys.readouterr().out == by_name


def test_untrusted_images_get_the_splits_checks_and_pixel_limit(workspace, monkeypatch, capsys, tmp_path):
    import io

    from PIL import Image

    from tests.unit.test_images import png_with_chunk, write_exif_rotated

    folder = tmp_path / "hostile"
    folder.mkdir()
    Image.new("L", (2000, 1000)).save(folder / "bomb.png", format="PNG")  # a few KB; 2 Mpx
    (folder / "exif.jpg").write_bytes(png_with_chunk(b"eXIf", b"garbage, not a TIFF header"))
    (folder / "eps.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    write_exif_rotated(folder / "rotated.jpg", 60, 40)
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["images"]["max_pixels"] = 1_000_000
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(workspace)
    code = main(["predict", str(folder), "--model", "scratch", "--params", str(tmp_path / "params.yaml"), "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == EXIT_FILE_FAILED
    assert [row["file"] for row in csv.DictReader(io.StringIO(out))] == [str(folder / "rotated.jpg")]
    assert f"cannot read {folder / 'bomb.png'}: too large: Image size (2000000 pixels) exceeds limit" in err
    assert f"cannot read {folder / 'exif.jpg'}: corrupt: SyntaxError: not a TIFF file" in err
    assert f"cannot read {folder / 'eps.jpg'}: not an image: cannot identify image file" in err
    assert "3 of 4 files failed" in err


def test_an_image_is_read_upright_as_the_split_wrote_it(workspace, monkeypatch, tmp_path):
    from catsdogs.predict.predictor import read_untrusted_image
    from tests.unit.test_images import write_exif_rotated

    write_exif_rotated(tmp_path / "rotated.jpg", 60, 40)  # blue left third, displayed at the top
    pixels = read_untrusted_image(tmp_path / "rotated.jpg", 32, 1_000_000)
    assert pixels.shape == (32, 32, 3)
    assert pixels[1, 16, 2] > 200 and pixels[1, 16, 0] < 60  # top row blue: EXIF applied, as in training


def test_missing_file_is_reported(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    code = main(["predict", "images/1.jpg", "images/nope.jpg", "--model", "scratch"])
    out, err = capsys.readouterr()
    assert code == EXIT_FILE_FAILED
    assert "images/1.jpg" in out
    assert "cannot read images/nope.jpg: no such file" in err


def test_missing_model_is_a_one_line_error(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    code = main(["predict", "images/1.jpg", "--model", "models/absent.keras"])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR
    assert out == ""
    assert err.strip().splitlines() == ["catsdogs predict: error: model not found: models/absent.keras (run the stage that trains it: dvc repro)"]


def test_best_without_metrics_says_what_to_do(tmp_path, workspace, monkeypatch, capsys):
    shutil.copy(workspace / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    code = main(["predict", str(workspace / "images/1.jpg")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "--model best needs reports/evaluate/metrics.json" in err


def test_empty_folder_is_an_error(tmp_path, workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    code = main(["predict", str(tmp_path), "--model", "scratch"])
    assert code == EXIT_ERROR
    assert "no image files" in capsys.readouterr().err


def test_usage_errors_exit_2_from_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "x.jpg", "--format", "xml"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_name_with_a_superscript_digit_is_predicted_with_the_rest(workspace, monkeypatch, capsys, tmp_path):
    folder = tmp_path / "odd names"
    folder.mkdir()
    for name in ("cat.0.jpg", "dog.1.jpg", "\u00b2.jpg", "10.jpg", "9.jpg"):  # str.isdigit("²") is true
        shutil.copy(workspace / "images/1.jpg", folder / name)
    monkeypatch.chdir(workspace)
    code = main(["predict", str(folder), "--model", "scratch", "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    names = [Path(row["file"]).name for row in csv.DictReader(io.StringIO(out))]
    assert names == ["9.jpg", "10.jpg", "cat.0.jpg", "dog.1.jpg", "\u00b2.jpg"]  # numbers first, in order


def test_the_table_escapes_control_characters_in_file_names(workspace, monkeypatch, capsys, tmp_path):
    forged = "a.jpg\nfake.jpg  cat  0.0050\nb.jpg"
    shutil.copy(workspace / "images/1.jpg", tmp_path / forged)
    (tmp_path / "c\x1b[2J.jpg").write_bytes(b"not an image")  # a terminal escape sequence in a name
    monkeypatch.chdir(workspace)
    code = main(["predict", str(tmp_path), "--model", "scratch"])
    out, err = capsys.readouterr()
    assert code == EXIT_FILE_FAILED
    lines = out.splitlines()
    assert len(lines) == 2 and "fake.jpg" not in lines[0]  # the header and one row, not three
    assert lines[1].startswith(str(tmp_path / "a.jpg\\nfake.jpg  cat  0.0050\\nb.jpg"))
    assert "\x1b" not in err and "c\\x1b[2J.jpg" in err
    main(["predict", str(tmp_path / forged), "--model", "scratch", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["file"] for row in rows] == [str(tmp_path / forged)]  # CSV quotes it and keeps it exact


def test_a_fifo_or_a_device_is_named_for_what_it_is(workspace, monkeypatch, capsys, tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    monkeypatch.chdir(workspace)
    code = main(["predict", "images/1.jpg", str(tmp_path / "pipe.jpg"), "/dev/zero", "--model", "scratch"])
    out, err = capsys.readouterr()
    assert code == EXIT_FILE_FAILED
    assert "images/1.jpg" in out
    assert f"cannot read {tmp_path / 'pipe.jpg'}: not a regular file: a FIFO (named pipe)" in err
    assert "cannot read /dev/zero: not a regular file: a character device" in err
