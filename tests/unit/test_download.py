"""The download stage: layouts, the dir / archive / synthetic sources, atomic output, the CLI."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from catsdogs.core.params import DownloadParams, ExtractionLimits, SyntheticParams
from catsdogs.sources.layouts import plan_members
from catsdogs.stages.download import build_raw, raw_layout


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip of ``members`` (name -> bytes) on disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of ``members`` in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def build(tmp_path: Path, **params):
    """Run the stage's builder into tmp_path/data/raw; return (counts, raw)."""
    raw = tmp_path / "data" / "raw"
    counts = build_raw(raw, Path("train"), Path("test"), seed=7, **DownloadParams(**params).model_dump())
    return counts, raw


def names(folder: Path) -> list[str]:
    """Sorted file names in a folder."""
    return sorted(p.name for p in folder.iterdir())


# --- layouts -----------------------------------------------------------------------------------


def test_kaggle_layout_with_test_folder_and_extras():
    plan = plan_members([
        ("train/", 0), ("train/cat.1.jpg", 5), ("train/DOG.02.JPEG", 5), ("train/cat.3.jpg", 0),
        ("test/7.jpg", 5), ("test1/8.jpg", 5), ("sample_submission.csv", 9), ("train/notes.jpg", 3),
        ("__MACOSX/train/._cat.1.jpg", 3),
    ])
    assert plan.train == {"train/cat.1.jpg": "cat.1.jpg", "train/DOG.02.JPEG": "dog.2.jpg"}
    assert plan.test == {"test/7.jpg": "7.jpg", "test1/8.jpg": "8.jpg"}
    assert plan.layouts == {"kaggle"}
    assert plan.skipped == Counter({"empty": 1, "not an image": 1, "unrecognised name": 1, "macOS metadata": 1})


def test_microsoft_layout_is_renamed():
    plan = plan_members([("PetImages/Cat/1.jpg", 9), ("PetImages/Dog/1.jpg", 9), ("PetImages/Dog/Thumbs.db", 9)])
    assert plan.train == {"PetImages/Cat/1.jpg": "cat.1.jpg", "PetImages/Dog/1.jpg": "dog.1.jpg"}
    assert plan.layouts == {"microsoft"} and plan.skipped == Counter({"not an image": 1})


def test_unknown_mixed_and_clashing_layouts_are_refused():
    with pytest.raises(ValueError, match="no recognisable layout.*'images/a.png'"):
        plan_members([("images/a.png", 3)])
    with pytest.raises(ValueError, match="mixes Kaggle"):
        plan_members([("train/cat.1.jpg", 3), ("PetImages/Dog/1.jpg", 3)])
    with pytest.raises(ValueError, match="map to cat.1.jpg"):
        plan_members([("a/cat.1.jpg", 3), ("b/cat.1.jpg", 3)])


def test_nested_archives_are_used_only_without_direct_images():
    assert plan_members([("train.zip", 9), ("test.zip", 9), ("x.csv", 1)]).nested == ["train.zip", "test.zip"]
    plan = plan_members([("train.zip", 9), ("train/cat.1.jpg", 3)])
    assert plan.nested == [] and plan.skipped["nested archive ignored"] == 1


# --- sources -----------------------------------------------------------------------------------


def test_archive_with_kaggle_folders(tmp_path):
    archive = write_zip(tmp_path / "kaggle.zip", {
        "dogs-vs-cats/train/cat.0.jpg": b"c0", "dogs-vs-cats/train/dog.0.jpg": b"d0",
        "dogs-vs-cats/train/dog.1.jpg": b"d1", "dogs-vs-cats/test/1.jpg": b"t1", "README.txt": b"hi",
    })
    counts, raw = build(tmp_path, source="archive", archive=str(archive))
    assert names(raw / "train") == ["cat.0.jpg", "dog.0.jpg", "dog.1.jpg"]
    assert names(raw / "test") == ["1.jpg"]
    assert (counts.train_cats, counts.train_dogs, counts.test, counts.skipped) == (1, 2, 1, {"not an image": 1})


def test_archive_with_nested_train_and_test_zips_as_the_competition_ships(tmp_path):
    train = zip_bytes({"train/cat.5.jpg": b"c", "train/dog.6.jpg": b"d"})
    test = zip_bytes({"test/1.jpg": b"t", "test/2.jpg": b"t"})
    archive = write_zip(tmp_path / "all.zip", {"train.zip": train, "test.zip": test, "sample_submission.csv": b"id"})
    counts, raw = build(tmp_path, source="archive", archive=str(archive))
    assert names(raw / "train") == ["cat.5.jpg", "dog.6.jpg"] and names(raw / "test") == ["1.jpg", "2.jpg"]
    assert counts.skipped == {"not an image": 1}
    assert names(raw.parent) == ["raw"]


def test_nested_archives_obey_the_limits(tmp_path):
    inner = zip_bytes({f"train/cat.{i}.jpg": b"c" for i in range(20)})
    archive = write_zip(tmp_path / "all.zip", {"train.zip": inner})
    with pytest.raises(ValueError, match="max_members=10"):
        build(tmp_path, source="archive", archive=str(archive), limits=ExtractionLimits(max_members=10))
    assert names(tmp_path / "data") == []


def test_nested_archives_share_one_budget(tmp_path):
    # Each nested zip alone is within max_total_bytes; together (with the extracted zips) they are not.
    # Before one budget covered them all, every nested archive got the whole limit again.
    image = bytes(300_000)
    train = zip_bytes({f"train/cat.{i}.jpg": image for i in range(4)} | {f"train/dog.{i}.jpg": image for i in range(4)},
                      zipfile.ZIP_DEFLATED)
    test = zip_bytes({f"test/{i}.jpg": image for i in range(8)}, zipfile.ZIP_DEFLATED)
    archive = write_zip(tmp_path / "all.zip", {"train.zip": train, "test.zip": test})
    assert archive.stat().st_size < 50_000  # 4.8 MB of images
    limits = ExtractionLimits(max_total_bytes=3_000_000, max_ratio=1e5)
    with pytest.raises(ValueError, match=r"extracting test.zip would write \d+ bytes in all \(nested archives included\), "
                                         r"over download.limits.max_total_bytes=3000000"):
        build(tmp_path, source="archive", archive=str(archive), limits=limits)
    assert names(tmp_path / "data") == []
    enough = ExtractionLimits(max_total_bytes=6_000_000, max_ratio=1e5)
    counts, _ = build(tmp_path, source="archive", archive=str(archive), limits=enough)
    assert (counts.train_cats, counts.test) == (4, 8)


def test_two_members_with_the_same_name_are_refused(tmp_path):
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zip_file, pytest.warns(UserWarning, match="Duplicate name"):
        zip_file.writestr("train/cat.1.jpg", b"the first")
        zip_file.writestr("train/dog.1.jpg", b"a dog")
        zip_file.writestr("train/cat.1.jpg", b"the second, which used to win silently")
    with pytest.raises(ValueError, match=r"two members named train/cat\.1\.jpg"):
        build(tmp_path, source="archive", archive=str(archive))
    assert names(tmp_path / "data") == []


def test_archive_errors_are_clear_and_leave_no_raw(tmp_path):
    with pytest.raises(ValueError, match="download.archive not found"):
        build(tmp_path, source="archive", archive=str(tmp_path / "missing.zip"))
    odd = write_zip(tmp_path / "odd.zip", {"photos/a.png": b"x"})
    with pytest.raises(ValueError, match="no recognisable layout"):
        build(tmp_path, source="archive", archive=str(odd))
    evil = write_zip(tmp_path / "evil.zip", {"train/cat.1.jpg": b"x", "../../evil.jpg": b"x"})
    with pytest.raises(ValueError, match="unsafe archive member"):
        build(tmp_path, source="archive", archive=str(evil))
    only_cats = write_zip(tmp_path / "cats.zip", {"train/cat.1.jpg": b"x"})
    with pytest.raises(ValueError, match="gave no dogs"):
        build(tmp_path, source="archive", archive=str(only_cats))
    assert names(tmp_path / "data") == []
    assert not (tmp_path / "evil.jpg").exists()


def make_kaggle_folder(root: Path) -> Path:
    """root/train with 2 cats, 1 dog and junk; root/test with 2 images and junk."""
    (root / "train" / "sub").mkdir(parents=True)
    (root / "test").mkdir()
    for name in ("cat.0.jpg", "cat.1.jpg", "dog.0.jpg"):
        (root / "train" / name).write_bytes(name.encode())
    (root / "train" / "Thumbs.db").write_bytes(b"x")
    (root / "train" / "dog.9.jpg").write_bytes(b"")
    (root / "train" / "sub" / "cat.7.jpg").write_bytes(b"ignored: not directly in train/")
    for name in ("1.jpg", "2.jpg", "notes.txt"):
        (root / "test" / name).write_bytes(name.encode())
    return root


def test_dir_source_pointing_at_the_train_folder_uses_the_sibling_test_folder(tmp_path):
    root = make_kaggle_folder(tmp_path / "kaggle")
    counts, raw = build(tmp_path, source="dir", dir=str(root / "train"))
    assert names(raw / "train") == ["cat.0.jpg", "cat.1.jpg", "dog.0.jpg"]
    assert (raw / "train" / "cat.1.jpg").read_bytes() == b"cat.1.jpg"
    assert names(raw / "test") == ["1.jpg", "2.jpg"]
    assert counts.skipped == {"not an image": 2, "empty": 1}


def test_dir_source_pointing_at_the_parent_folder(tmp_path):
    root = make_kaggle_folder(tmp_path / "kaggle")
    counts, raw = build(tmp_path, source="dir", dir=str(root))
    assert (counts.train_cats, counts.train_dogs, counts.test) == (2, 1, 2)


def test_dir_source_without_a_test_folder_and_its_errors(tmp_path):
    root = make_kaggle_folder(tmp_path / "kaggle")
    (root / "test" / "1.jpg").unlink()
    (root / "test" / "2.jpg").unlink()
    (root / "test" / "notes.txt").unlink()
    (root / "test").rmdir()
    counts, raw = build(tmp_path, source="dir", dir=str(root / "train"))
    assert counts.test == 0 and not (raw / "test").exists()
    with pytest.raises(ValueError, match="download.dir not found"):
        build(tmp_path, source="dir", dir=str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "photo.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="holds no cat.N.jpg / dog.N.jpg"):
        build(tmp_path, source="dir", dir=str(empty))


def test_synthetic_source_is_seeded(tmp_path):
    synthetic = SyntheticParams(count=4, size=16, test_count=3)
    counts, raw = build(tmp_path / "a", source="synthetic", synthetic=synthetic)
    assert (counts.train_cats, counts.train_dogs, counts.test) == (4, 4, 3)
    _, again = build(tmp_path / "b", source="synthetic", synthetic=synthetic)
    assert (raw / "train" / "dog.3.jpg").read_bytes() == (again / "train" / "dog.3.jpg").read_bytes()
    settings = DownloadParams(source="synthetic", synthetic=synthetic).model_dump()
    other = build_raw(tmp_path / "c", Path("t"), Path("u"), seed=8, **settings)
    assert other.train_cats == 4
    assert (raw / "train" / "dog.3.jpg").read_bytes() != (tmp_path / "c" / "t" / "dog.3.jpg").read_bytes()


def test_a_rebuild_replaces_the_tree_and_a_failure_keeps_it(tmp_path):
    synthetic = SyntheticParams(count=4, size=16, test_count=0)
    _, raw = build(tmp_path, source="synthetic", synthetic=SyntheticParams(count=5, size=16, test_count=2))
    build(tmp_path, source="synthetic", synthetic=synthetic)
    assert len(names(raw / "train")) == 8 and not (raw / "test").exists()  # nothing stale survives
    with pytest.raises(ValueError):
        build(tmp_path, source="dir", dir=str(tmp_path / "nowhere"))
    assert len(names(raw / "train")) == 8
    assert names(tmp_path / "data") == ["raw"]


def test_raw_layout_checks_the_paths():
    assert raw_layout("data/raw", "data/raw/train", "data/raw/x/test") == (Path("train"), Path("x/test"))
    with pytest.raises(ValueError, match="paths.raw_train .* must lie inside paths.raw"):
        raw_layout("data/raw", "data/train", "data/raw/test")
    with pytest.raises(ValueError, match="separate folders"):
        raw_layout("data/raw", "data/raw/train", "data/raw/train/test")
    with pytest.raises(ValueError, match="not paths.raw itself"):
        raw_layout("data/raw", "data/raw", "data/raw/test")


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"flags": 0x1}, r"member 'train/cat\.2\.jpg' of locked\.zip is encrypted"),
        ({"method": 99}, r"member 'train/cat\.2\.jpg' of locked\.zip uses compression method 99 \(AES encryption\)"),
    ],
    ids=["encrypted", "aes"],
)
def test_an_encrypted_or_aes_archive_is_one_line_and_keeps_the_previous_raw(tmp_path, patch, expected):
    from tests.unit.test_extract import patched_zip

    good = write_zip(tmp_path / "good.zip", {"train/cat.1.jpg": b"c", "train/dog.1.jpg": b"d"})
    _, raw = build(tmp_path, source="archive", archive=str(good))
    before = {path.relative_to(raw): path.read_bytes() for path in raw.rglob("*") if path.is_file()}
    locked = patched_zip(tmp_path / "locked.zip", {"train/cat.2.jpg": b"c", "train/dog.2.jpg": b"d"}, **patch)
    with pytest.raises(ValueError, match=expected) as error:
        build(tmp_path, source="archive", archive=str(locked))
    assert "\n" not in str(error.value)
    assert {path.relative_to(raw): path.read_bytes() for path in raw.rglob("*") if path.is_file()} == before
