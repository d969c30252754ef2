"""The split (catsdogs/data/split.py, run by the split stage) on generated folders of cat.N.jpg / dog.N.jpg."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from catsdogs.core.labels import parse_train_name
from catsdogs.core.params import validate_params
from catsdogs.data.split import choose_split, class_quotas, list_raw_images, split_dataset
from catsdogs.sources.synthetic import write_kaggle_train
from catsdogs.stages import split as split_stage
from tests.unit.test_images import (
    MAX_PIXELS,
    noise,
    pillow_accepts_tensorflow_rejects,
    png_with_chunk,
    write_bad_files,
    write_odd_files,
)

SIZE = 32


def make_raw(directory: Path, cats: int, dogs: int, seed: int = 0) -> Path:
    """``cats`` cat.N.jpg and ``dogs`` dog.N.jpg files (generated, 32x32)."""
    write_kaggle_train(directory, max(cats, dogs), SIZE, seed)
    for prefix, count in (("cat", cats), ("dog", dogs)):
        for index in range(count, max(cats, dogs)):
            (directory / f"{prefix}.{index}.jpg").unlink()
    return directory


def tree(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``directory``."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def run_split(raw: Path, out: Path, **options) -> tuple[dict, dict]:
    """split_dataset into out/train and out/validation; params.yaml's default values where not given."""
    defaults = validate_params({})
    values = {**defaults.split.model_dump(), "max_pixels": defaults.images.max_pixels, "seed": defaults.common.seed,
              **options}
    return split_dataset(raw, out / "train", out / "validation", **values)


def names(out: Path, split: str, class_name: str) -> list[str]:
    """The file names written to one class folder."""
    return sorted(path.name for path in (out / split / class_name).iterdir())


def test_parse_train_name() -> None:
    assert parse_train_name("cat.12.jpg") == (0, 12)
    assert parse_train_name("dog.0.jpg") == (1, 0)
    for other in ("cat.jpg", "cat.x.jpg", "Cat.1.jpg", "dog.1.png", "12.jpg", "cat.1.jpg.bak"):
        assert parse_train_name(other) is None


def test_listing_sorts_by_class_then_numeric_id_and_skips_other_names(tmp_path: Path) -> None:
    for name in ("dog.2.jpg", "cat.10.jpg", "cat.9.jpg", "dog.10.jpg", "cat.1.jpg", "notes.txt", "cat.a.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "cat.3.jpg").mkdir()  # a folder with a Kaggle name is skipped too
    files, skipped = list_raw_images(tmp_path)
    assert [path.name for path in files] == ["cat.1.jpg", "cat.9.jpg", "cat.10.jpg", "dog.2.jpg", "dog.10.jpg"]
    assert skipped == ["cat.3.jpg", "cat.a.jpg", "notes.txt"]


def test_missing_raw_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="raw image folder not found"):
        list_raw_images(tmp_path / "absent")


def test_two_runs_give_identical_lists_and_bytes(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 15, 15)
    write_odd_files(raw, {"cmyk": "cat.20.jpg", "exif_rotated": "dog.20.jpg"})  # re-encoding is deterministic too
    first = run_split(raw, tmp_path / "a", seed=7)
    second = run_split(raw, tmp_path / "b", seed=7)
    assert first == second
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert first[0]["normalized"]["cmyk"] == 1


def test_a_different_seed_gives_different_lists(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 20, 20)
    _, files_a = run_split(raw, tmp_path / "a", seed=1)
    _, files_b = run_split(raw, tmp_path / "b", seed=2)
    for class_name in ("cats", "dogs"):
        assert files_a["validation"][class_name] != files_b["validation"][class_name]
        assert sorted(files_a["validation"][class_name] + files_a["train"][class_name]) == sorted(
            files_b["validation"][class_name] + files_b["train"][class_name]
        )


@pytest.mark.parametrize(("cats", "dogs", "ratio"), [(23, 17, 0.3), (10, 10, 0.2), (7, 31, 0.5), (5, 6, 0.75)])
def test_each_class_is_split_at_the_ratio(tmp_path: Path, cats: int, dogs: int, ratio: float) -> None:
    raw = make_raw(tmp_path / "raw", cats, dogs)
    report, files = run_split(raw, tmp_path / "out", ratio=ratio)
    for class_name, count in (("cats", cats), ("dogs", dogs)):
        validation, train = files["validation"][class_name], files["train"][class_name]
        assert abs(len(validation) - ratio * count) <= 1
        assert not set(validation) & set(train)
        assert len(validation) + len(train) == count
        prefix = class_name[:-1] + "."
        assert all(name.startswith(prefix) for name in validation + train)
        assert names(tmp_path / "out", "validation", class_name) == sorted(validation)
        assert names(tmp_path / "out", "train", class_name) == sorted(train)
        assert report["validation"][class_name] == len(validation)
    assert report["train"]["total"] + report["validation"]["total"] == cats + dogs


def test_file_lists_are_sorted_by_numeric_id(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 12, 12)
    _, files = run_split(raw, tmp_path / "out")
    ids = [parse_train_name(name)[1] for name in files["train"]["cats"]]
    assert ids == sorted(ids)


def test_class_quotas() -> None:
    assert class_quotas([30, 20], None) == [30, 20]
    assert class_quotas([30, 20], 10) == [5, 5]
    assert class_quotas([30, 20], 11) == [6, 5]  # the odd one goes to the larger class
    assert class_quotas([20, 30], 11) == [5, 6]
    assert class_quotas([20, 20], 11) == [6, 5]  # cats on a tie
    assert class_quotas([3, 30], 10) == [3, 7]  # a short class gives all it has
    assert class_quotas([30, 3], 33) == [30, 3]
    with pytest.raises(ValueError, match=r"split\.n is 34 but only 33 valid images"):
        class_quotas([30, 3], 34)


def test_n_takes_a_balanced_subset(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 20, 20)
    report, files = run_split(raw, tmp_path / "out", n=15, ratio=0.2)
    assert report["files"]["used"] == 15
    assert report["train"]["cats"] + report["validation"]["cats"] == 8
    assert report["train"]["dogs"] + report["validation"]["dogs"] == 7
    assert report["validation"] == {"cats": 2, "dogs": 1, "total": 3}
    assert len(tree(tmp_path / "out")) == 15


def test_n_counts_only_valid_images(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 6, 6)
    write_bad_files(raw, {"empty": "cat.6.jpg", "corrupt": "cat.7.jpg"})
    report, files = run_split(raw, tmp_path / "out", n=12)
    assert (report["files"]["used"], report["files"]["dropped"]) == (12, 2)
    assert "cat.6.jpg" not in files["train"]["cats"] + files["validation"]["cats"]
    with pytest.raises(ValueError, match=r"split\.n is 13 but only 12 valid images exist \(6 cats, 6 dogs\)"):
        run_split(raw, tmp_path / "again", n=13)


def test_choose_split_is_pure_and_seeded(tmp_path: Path) -> None:
    valid = [[Path(f"cat.{i}.jpg") for i in range(10)], [Path(f"dog.{i}.jpg") for i in range(10)]]
    assert choose_split(valid, None, 0.2, 3) == choose_split(valid, None, 0.2, 3)
    train, validation = choose_split(valid, 10, 0.2, 3)
    assert [len(files) for files in train] == [4, 4]
    assert [len(files) for files in validation] == [1, 1]


def test_bad_images_are_dropped_counted_and_listed(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 8, 8)
    bad = {
        "empty": "cat.100.jpg",
        "not_an_image": "dog.100.jpg",
        "corrupt": "cat.101.jpg",
        "too_small": "dog.101.jpg",
        "too_large": "cat.102.jpg",
    }
    write_bad_files(raw, bad)
    (raw / "README.txt").write_text("skipped")
    report, files = run_split(raw, tmp_path / "out", max_pixels=MAX_PIXELS)
    assert report["dropped"] == {reason: 1 for reason in bad}
    assert report["files"] == {
        "found": 22,
        "skipped": 1,
        "checked": 21,
        "dropped": 5,
        "valid": 16,
        "used": 16,
        "normalized": 0,
    }
    assert {(item["file"], item["reason"]) for item in files["dropped"]} == {(n, r) for r, n in bad.items()}
    assert all(item["detail"] for item in files["dropped"])
    assert files["skipped"] == ["README.txt"]
    written = set(tree(tmp_path / "out"))
    assert not any(Path(path).name in bad.values() for path in written)
    assert len(written) == 16


def test_dropped_files_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = make_raw(tmp_path / "raw", 5, 5)
    write_bad_files(raw, {"not_an_image": "dog.9.jpg"})
    with caplog.at_level("WARNING", logger="split"):
        run_split(raw, tmp_path / "out")
    assert any("dog.9.jpg" in record.message and "not_an_image" in record.message for record in caplog.records)


def test_odd_images_are_normalized_not_dropped(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 6, 6)
    odd = {"grayscale": "cat.6.jpg", "cmyk": "dog.6.jpg", "not_jpeg": "cat.7.jpg", "exif_rotated": "dog.7.jpg"}
    write_odd_files(raw, odd)
    out = tmp_path / "out"
    report, files = run_split(raw, out, ratio=0.5)
    assert report["normalized"] == {reason: 1 for reason in odd}
    assert report["files"]["dropped"] == 0 and report["files"]["normalized"] == 4
    assert {(item["file"], item["reason"]) for item in files["normalized"]} == {(n, r) for r, n in odd.items()}
    written = {path.name: path for path in out.rglob("*.jpg")}
    assert len(written) == 16
    for name, path in written.items():
        with Image.open(path) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")
            assert image.getexif().get(0x0112, 1) == 1
        if name not in odd.values():  # ordinary RGB JPEGs: copied, not re-encoded
            assert path.read_bytes() == (raw / name).read_bytes()
    with Image.open(written["dog.7.jpg"]) as image:
        assert image.size == (40, 60)  # stored 60x40 with orientation 6: upright is 40 wide, 60 high


def test_hostile_files_are_dropped_or_normalized_never_a_crash(tmp_path: Path) -> None:
    import io

    import numpy as np
    import tensorflow as tf

    raw = make_raw(tmp_path / "raw", 6, 6)
    (raw / "cat.50.jpg").write_bytes(png_with_chunk(b"eXIf", b"garbage, not a TIFF header"))  # crashed split
    buffer = io.BytesIO()
    noise(48, 48).save(buffer, format="JPEG", quality=90)
    (raw / "dog.50.jpg").write_bytes(pillow_accepts_tensorflow_rejects(buffer.getvalue()))  # crashed training later
    (raw / "cat.51.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))).save(raw / "dog.51.jpg", format="PNG")
    out = tmp_path / "out"
    report, files = run_split(raw, out, ratio=0.5)
    assert report["dropped"] == {"empty": 0, "not_an_image": 1, "too_large": 0, "too_small": 0, "corrupt": 2}
    assert {(item["file"], item["reason"]) for item in files["dropped"]} == {
        ("cat.50.jpg", "corrupt"), ("dog.50.jpg", "corrupt"), ("cat.51.jpg", "not_an_image"),
    }
    assert files["normalized"] == [{"file": "dog.51.jpg", "reason": "not_jpeg"}]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "raw"]  # the staging folder is gone
    assert sorted(path.name for path in out.iterdir()) == ["train", "validation"]
    for path in out.rglob("*.jpg"):  # everything kept decodes with the training decoder
        assert tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False).shape[-1] == 3


def test_too_few_images_in_a_class_is_a_clear_error(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 10, 2)
    with pytest.raises(ValueError, match="class dogs has 2 images to split: .* 2 training and 0 validation"):
        run_split(raw, tmp_path / "out", ratio=0.2)
    assert not (tmp_path / "out").exists()  # nothing half-written
    report, _ = run_split(raw, tmp_path / "out", ratio=0.5)
    assert report["validation"]["dogs"] == 1


def test_a_class_without_images_is_a_clear_error(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 10, 0)
    with pytest.raises(ValueError, match="class dogs has 0 images"):
        run_split(raw, tmp_path / "out")


def test_a_rerun_replaces_the_previous_output_whole(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "raw", 20, 20)
    run_split(raw, tmp_path / "out")
    report, _ = run_split(raw, tmp_path / "out", n=10)
    assert len(tree(tmp_path / "out")) == 10 == report["files"]["used"]
    assert not [path for path in tmp_path.joinpath("out").iterdir() if path.name.startswith(".")]


def write_params(directory: Path, split: dict | None = None) -> None:
    """A params.yaml with the defaults, ``split`` overrides, and paths inside ``directory``."""
    params = {"split": split or {}}
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def test_main_writes_outputs_and_both_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_raw(tmp_path / "data" / "raw" / "train", 10, 10)
    write_params(tmp_path, {"ratio": 0.3, "n": 16})
    monkeypatch.chdir(tmp_path)
    split_stage.main()
    report = json.loads((tmp_path / "reports/data/split.json").read_text())
    files = json.loads((tmp_path / "reports/data/split_files.json").read_text())
    assert report["train"] == {"cats": 6, "dogs": 6, "total": 12}
    assert report["validation"] == {"cats": 2, "dogs": 2, "total": 4}
    assert names(tmp_path / "data", "validation", "dogs") == files["validation"]["dogs"]
    # The metrics report holds numbers only, so `dvc metrics show` stays a table.
    assert all(isinstance(value, int) for section in report.values() for value in section.values())


