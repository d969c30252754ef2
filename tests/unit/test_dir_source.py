"""The dir source against a hostile folder, and the names the pipeline accepts from any source.

Only regular files inside the folder are read: a symbolic link out of it (to a secret, to
/etc/passwd, to a photo elsewhere) is refused unless ``download.follow_links`` says to read
such links; FIFOs, devices, links that lead nowhere and loops are skipped and counted by reason,
never opened in a way that could block. Names: ASCII digits only, matched whole, with a bounded
number of digits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from catsdogs.core.labels import (
    canonical_test_name,
    canonical_train_name,
    kaggle_test_id,
    numeric_stem,
    parse_train_name,
)
from catsdogs.core.params import DownloadParams
from catsdogs.sources.fetch import DUPLICATE
from catsdogs.sources.layouts import plan_members
from catsdogs.stages.download import build_raw

JPEG_BYTES = b"\xff\xd8\xff\xe0 not decoded by the download stage"


def build(tmp_path: Path, **params):
    """Run the stage's builder into tmp_path/data/raw; return (counts, raw)."""
    raw = tmp_path / "data" / "raw"
    counts = build_raw(raw, Path("train"), Path("test"), seed=7, **DownloadParams(**params).model_dump())
    return counts, raw


def photo_folder(root: Path, count: int = 3) -> Path:
    """root/train with ``count`` cats and ``count`` dogs."""
    train = root / "train"
    train.mkdir(parents=True)
    for index in range(count):
        for animal in ("cat", "dog"):
            (train / f"{animal}.{index}.jpg").write_bytes(JPEG_BYTES + animal.encode())
    return train


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    """A photo folder whose train/ also holds links out of it: a secret, /etc/passwd, a photo elsewhere."""
    train = photo_folder(tmp_path / "photos")
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = SECRET-KEY-DO-NOT-LEAK\n")
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(JPEG_BYTES + b"outside")
    (train / "cat.9.jpg").symlink_to(secret)
    (train / "dog.9.jpg").symlink_to("/etc/passwd")
    (train / "cat.10.jpg").symlink_to(elsewhere)
    return train, secret


def all_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def test_a_link_out_of_the_folder_is_refused_and_nothing_is_written(tmp_path, hostile):
    train, _ = hostile
    with pytest.raises(ValueError, match=r"download.dir: .*cat\.10\.jpg is a symbolic link to .*outside") as error:
        build(tmp_path, source="dir", dir=str(train.parent))
    assert "download.follow_links: true" in str(error.value)
    assert "SECRET" not in str(error.value)
    assert not (tmp_path / "data" / "raw").exists()


def test_follow_links_reads_them_and_says_so(tmp_path, hostile, caplog):
    train, secret = hostile
    os.unlink(train / "cat.9.jpg")  # a user who builds a data set out of links links to photos
    os.unlink(train / "dog.9.jpg")
    with caplog.at_level(logging.INFO):
        counts, raw = build(tmp_path, source="dir", dir=str(train.parent), follow_links=True)
    assert (raw / "train" / "cat.10.jpg").read_bytes() == JPEG_BYTES + b"outside"
    assert (counts.train_cats, counts.train_dogs) == (4, 3)
    assert "read 1 files through symbolic links that lead out of their folder" in caplog.text


def test_links_inside_the_folder_are_read_without_the_param(tmp_path):
    train = photo_folder(tmp_path / "photos")
    (train / "cat.20.jpg").symlink_to("cat.0.jpg")  # relative, inside
    (train / "dog.20.jpg").symlink_to(train / "dog.1.jpg")  # absolute, inside
    counts, raw = build(tmp_path, source="dir", dir=str(train))
    assert (raw / "train" / "cat.20.jpg").read_bytes() == (train / "cat.0.jpg").read_bytes()
    assert (counts.train_cats, counts.train_dogs) == (4, 4) and not counts.skipped


def test_special_files_are_skipped_and_counted_by_reason(tmp_path):
    train = photo_folder(tmp_path / "photos")
    os.mkfifo(train / "cat.30.jpg")  # opening it for reading would block a plain open()
    (train / "dog.30.jpg").symlink_to("dog.30.jpg")  # a link loop
    (train / "cat.31.jpg").symlink_to("missing.jpg")  # leads nowhere
    (train / "dog.31.jpg").symlink_to("cat.30.jpg")  # a link to the FIFO, inside the folder
    (train / "cat.32.jpg").mkdir()  # a folder with a photo's name
    counts, raw = build(tmp_path, source="dir", dir=str(train))
    assert sorted(path.name for path in (raw / "train").iterdir()) == sorted(
        f"{animal}.{index}.jpg" for animal in ("cat", "dog") for index in range(3)
    )
    assert counts.skipped == {"not a regular file": 2, "broken link": 2}


def test_a_link_to_a_device_is_refused_or_skipped_never_read(tmp_path):
    train = photo_folder(tmp_path / "photos")
    (train / "cat.40.jpg").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="outside"):
        build(tmp_path, source="dir", dir=str(train))
    counts, raw = build(tmp_path, source="dir", dir=str(train), follow_links=True)
    assert counts.skipped == {"not a regular file": 1}
    assert not (raw / "train" / "cat.40.jpg").exists()


def test_a_train_folder_that_links_out_is_refused(tmp_path):
    elsewhere = photo_folder(tmp_path / "elsewhere")
    root = tmp_path / "photos"
    root.mkdir()
    (root / "train").symlink_to(elsewhere)
    with pytest.raises(ValueError, match=r"train is a symbolic link to .*outside"):
        build(tmp_path, source="dir", dir=str(root))
    counts, _ = build(tmp_path, source="dir", dir=str(root), follow_links=True)
    assert (counts.train_cats, counts.train_dogs) == (3, 3)


def test_a_folder_of_empty_files_says_what_it_skipped(tmp_path):
    train = tmp_path / "photos"
    train.mkdir()
    for index in range(50):
        (train / f"cat.{index}.jpg").write_bytes(b"")
    (train / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"holds no cat.N.jpg / dog.N.jpg images \(skipped: empty 50, not an image 1\)"):
        build(tmp_path, source="dir", dir=str(train))


def test_a_fifo_as_the_archive_is_named_as_such(tmp_path):
    fifo = tmp_path / "photos.zip"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"download.archive .*photos.zip: not a regular file: a FIFO"):
        build(tmp_path, source="archive", archive=str(fifo))
    with pytest.raises(ValueError, match=r"download.archive not found: .*absent.zip"):
        build(tmp_path, source="archive", archive=str(tmp_path / "absent.zip"))


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "cat.40.jpg\n",  # re.match's $ accepts a trailing newline
        "cat.\u0664\u0660.jpg",  # Arabic-Indic 40: \d matches it and int() reads it as 40
        "dog.\uff14\uff10.jpg",  # fullwidth 40
        "cat.\u00b2.jpg",  # superscript two: str.isdigit() is true, int() fails
        "cat." + "9" * 5000 + ".jpg",  # past Python's int() limit of 4,300 digits
        "dog." + "7" * 300 + ".jpg",  # a file name too long for the file system
        "cat.1234567890.jpg",  # more digits than any Kaggle id
    ],
)
def test_names_outside_ascii_digits_or_too_long_are_not_photos(name):
    assert canonical_train_name(name) is None
    assert canonical_test_name(name.removeprefix("cat.").removeprefix("dog.")) is None
    assert parse_train_name(name) is None
    plan = plan_members([("train/cat.1.jpg", 9), ("train/dog.1.jpg", 9), (f"train/{name}", 9)])
    assert plan.train == {"train/cat.1.jpg": "cat.1.jpg", "train/dog.1.jpg": "dog.1.jpg"}
    assert sum(plan.skipped.values()) == 1  # "not an image" for the newline's suffix, else "unrecognised name"


def test_leading_zeros_are_dropped_and_canonical_names_are_strict():
    assert canonical_train_name("CAT.0007.JPEG") == "cat.7.jpg"
    assert canonical_train_name("dog." + "0" * 300 + "12.jpg") == "dog.12.jpg"
    assert canonical_test_name("000.jpg") == "0.jpg"
    assert parse_train_name("cat.12.jpg") == (0, 12) and parse_train_name("cat.012.jpg") is None
    assert kaggle_test_id("12.jpg") == 12 and kaggle_test_id("012.jpg") is None
    assert kaggle_test_id("\u00b2.jpg") is None
    assert numeric_stem("12.png") == 12 and numeric_stem("\u00b2.jpg") is None and numeric_stem("a.jpg") is None


def test_a_directory_with_hostile_names_copies_only_the_photos(tmp_path):
    train = photo_folder(tmp_path / "photos")
    for name in ("cat.\u0664\u0660.jpg", "cat." + "9" * 200 + ".jpg", "dog.\u00b2.jpg"):
        (train / name).write_bytes(JPEG_BYTES)
    counts, raw = build(tmp_path, source="dir", dir=str(train))
    assert (counts.train_cats, counts.train_dogs) == (3, 3)
    assert counts.skipped == {"unrecognised name": 3}


def test_long_member_names_in_an_archive_are_skipped_or_renamed_not_an_os_error(tmp_path):
    import io
    import zipfile

    def zip_bytes(members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    inner = zip_bytes({"train/cat.1.jpg": b"c", "train/dog.1.jpg": b"d", "train/cat." + "7" * 300 + ".jpg": b"c"})
    outer = tmp_path / "all.zip"
    outer.write_bytes(zip_bytes({"train" + "x" * 300 + ".zip": inner, "cat." + "9" * 5000 + ".jpg": b"x"}))
    counts, raw = build(tmp_path, source="archive", archive=str(outer))
    assert sorted(path.name for path in (raw / "train").iterdir()) == ["cat.1.jpg", "dog.1.jpg"]
    assert counts.skipped == {"unrecognised name": 2}  # the inner 300-digit name, the outer 5,000-digit one


@pytest.mark.parametrize(("patch", "expected"), [({"flags": 0x1}, "is encrypted"), ({"method": 99}, "method 99")])
def test_an_encrypted_archive_is_one_line_and_keeps_the_previous_raw_tree(tmp_path, patch, expected):
    from tests.unit.test_extract import patched_zip

    train = photo_folder(tmp_path / "photos")
    _, raw = build(tmp_path, source="dir", dir=str(train))
    before = all_bytes(raw)
    archive = patched_zip(tmp_path / "locked.zip", {"train/cat.1.jpg": b"c", "train/dog.1.jpg": b"d"}, **patch)
    with pytest.raises(ValueError, match=expected) as error:
        build(tmp_path, source="archive", archive=str(archive))
    assert "\n" not in str(error.value) and "of locked.zip" in str(error.value)
    assert all_bytes(raw) == before


def photos(folder: Path, names: dict[str, bytes]) -> Path:
    """``folder`` holding the named files."""
    folder.mkdir(parents=True)
    for name, data in names.items():
        (folder / name).write_bytes(data)
    return folder


def test_several_folders_make_one_set_and_each_brings_its_test_folder(tmp_path):
    first = photo_folder(tmp_path / "kaggle", count=2)
    photos(tmp_path / "kaggle" / "test", {"1.jpg": JPEG_BYTES + b"t1"})
    second = photos(tmp_path / "mine", {"cat.100.jpg": JPEG_BYTES + b"c", "dog.101.jpg": JPEG_BYTES + b"d"})
    photos(tmp_path / "more" / "train", {"dog.7.jpg": JPEG_BYTES + b"x"})
    photos(tmp_path / "more" / "test", {"2.jpg": JPEG_BYTES + b"t2"})
    counts, raw = build(tmp_path, source="dir", dir=[str(first.parent), str(second), str(tmp_path / "more")])
    assert sorted(path.name for path in (raw / "train").iterdir()) == [
        "cat.0.jpg", "cat.1.jpg", "cat.100.jpg", "dog.0.jpg", "dog.1.jpg", "dog.101.jpg", "dog.7.jpg"]
    assert sorted(path.name for path in (raw / "test").iterdir()) == ["1.jpg", "2.jpg"]
    assert (raw / "train" / "dog.7.jpg").read_bytes() == JPEG_BYTES + b"x"
    assert not counts.skipped


def test_a_photo_in_two_folders_with_the_same_bytes_is_copied_once_and_reported(tmp_path, caplog):
    first = photo_folder(tmp_path / "a", count=3)
    second = photos(tmp_path / "b", {"cat.1.jpg": (first / "cat.1.jpg").read_bytes(),
                                     "dog.2.jpg": (first / "dog.2.jpg").read_bytes(),
                                     "dog.5.jpg": JPEG_BYTES + b"new"})
    with caplog.at_level(logging.INFO):
        counts, raw = build(tmp_path, source="dir", dir=[str(first), str(second)])
    assert len(list((raw / "train").iterdir())) == 7
    assert counts.skipped == {DUPLICATE: 2}
    assert "2 photos were in an earlier folder too, with the same bytes: copied once" in caplog.text


def test_a_name_in_two_folders_with_different_bytes_names_both_and_writes_nothing(tmp_path):
    first = photo_folder(tmp_path / "a", count=3)
    second = photos(tmp_path / "b", {"cat.1.jpg": (first / "cat.1.jpg").read_bytes()[:-1] + b"?"})
    with pytest.raises(ValueError, match=r"download.dir: .*/a/train/cat\.1\.jpg and .*/b/cat\.1\.jpg are both "
                                         r"cat\.1\.jpg with different bytes"):
        build(tmp_path, source="dir", dir=[str(first.parent), str(second)])
    assert not (tmp_path / "data" / "raw").exists()


def test_the_same_folder_twice_under_two_spellings_is_refused(tmp_path):
    first = photo_folder(tmp_path / "a")
    with pytest.raises(ValueError, match="download.dir lists the same photos twice"):
        build(tmp_path, source="dir", dir=[str(first.parent), str(first)])


@pytest.mark.parametrize("folders, expected", [
    ([], "download.dir is an empty list"),
    (["a", ""], "holds an empty name"),
    (["a", "a"], "lists a folder twice"),
])
def test_a_bad_list_of_folders_is_a_params_error(folders, expected):
    with pytest.raises(ValueError, match=expected):
        DownloadParams(source="dir", dir=folders)
