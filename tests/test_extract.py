"""Safe extraction: crafted archives are refused before anything is written."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from stages.lib.extract import (
    check_members,
    extract_members,
    safe_extract,
    safe_member_path,
    verify_zip,
)
from stages.lib.params import ExtractionLimits

LIMITS = ExtractionLimits()


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding ``members`` (name -> bytes), names written exactly as given."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def all_files(root: Path) -> set[str]:
    """Every file and folder under ``root``, relative, as posix strings."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A target folder nested two levels down, so traversal has somewhere to land."""
    target = tmp_path / "outer" / "inner" / "target"
    return tmp_path, target


@pytest.mark.parametrize(
    "evil",
    ["../evil.txt", "a/../../evil.txt", "../../outer/evil.txt", "/tmp/evil.txt", "\\evil.txt",
     "C:evil.txt", "a\\..\\..\\evil.txt"],
)
def test_traversal_and_absolute_members_are_refused_and_nothing_is_written(sandbox, evil):
    root, target = sandbox
    archive = write_zip(root / "evil.zip", {"good/cat.1.jpg": b"fine", evil: b"owned"})
    before = all_files(root)
    with pytest.raises(ValueError, match="unsafe archive member"):
        safe_extract(archive, target, LIMITS)
    assert all_files(root) == before  # not even the good member, nor a staging folder
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"owned"


def test_a_plan_cannot_rename_a_member_outside_the_destination(sandbox):
    root, target = sandbox
    archive = write_zip(root / "ok.zip", {"cat.1.jpg": b"x"})
    with pytest.raises(ValueError, match="escape"):
        extract_members(archive, target, {"cat.1.jpg": "../escaped.jpg"}, LIMITS)
    assert not (target.parent / "escaped.jpg").exists()


def test_symlink_members_are_refused(sandbox):
    root, target = sandbox
    archive = root / "link.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("train/cat.1.jpg", b"fine")
        link = zipfile.ZipInfo("train/dog.1.jpg")
        link.create_system = 3  # Unix: the mode sits in the high 16 bits of external_attr
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zip_file.writestr(link, "/etc/passwd")
    before = all_files(root)
    with pytest.raises(ValueError, match="symbolic link"):
        safe_extract(archive, target, LIMITS)
    assert all_files(root) == before


def test_device_and_fifo_members_are_refused(sandbox):
    root, target = sandbox
    archive = root / "fifo.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        fifo = zipfile.ZipInfo("pipe")
        fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
        zip_file.writestr(fifo, b"")
    with pytest.raises(ValueError, match="not a regular file"):
        safe_extract(archive, target, LIMITS)
    assert not target.exists()


def test_member_count_bomb_is_refused(sandbox):
    root, target = sandbox
    archive = write_zip(root / "many.zip", {f"f{i}.txt": b"x" for i in range(11)})
    with pytest.raises(ValueError, match="max_members=10"):
        safe_extract(archive, target, ExtractionLimits(max_members=10))
    assert not target.parent.exists() or not any(target.parent.iterdir())


def test_total_size_bomb_is_refused(sandbox):
    root, target = sandbox
    archive = write_zip(root / "big.zip", {"a.bin": b"\x01" * 600, "b.bin": b"\x02" * 600})
    with pytest.raises(ValueError, match="max_total_bytes=1000"):
        safe_extract(archive, target, ExtractionLimits(max_total_bytes=1000))
    assert not target.exists()


def test_compression_ratio_bomb_is_refused_with_the_default_limits(sandbox):
    root, target = sandbox
    # 4 MiB of zeros deflate to ~4 KiB: a ~1000x ratio among harmless members.
    archive = write_zip(root / "bomb.zip", {"cat.1.jpg": b"jpeg", "zeros.bin": bytes(4 << 20)})
    with pytest.raises(ValueError, match="max_ratio=200"):
        safe_extract(archive, target, LIMITS)
    assert not target.exists()


def test_overall_ratio_is_checked_with_a_small_limit(sandbox):
    root, target = sandbox
    archive = write_zip(root / "text.zip", {f"part{i}.txt": b"ab" * 200_000 for i in range(4)})
    with pytest.raises(ValueError, match="max_ratio=5"):
        check_members(zipfile.ZipFile(archive).infolist(), ExtractionLimits(max_ratio=5.0), ratio_floor_bytes=1)
    with pytest.raises(ValueError, match="overall"):
        safe_extract(archive, target, ExtractionLimits(max_ratio=5.0))


def test_a_member_larger_than_its_header_declares_is_refused(sandbox):
    root, target = sandbox
    archive = write_zip(root / "liar.zip", {"a.bin": b"y" * 5000}, compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zip_file:
        info = zip_file.getinfo("a.bin")
    # Patch the declared uncompressed size (local header offset 22, central directory offset 24).
    for offset in (info.header_offset + 22, data.rfind(b"PK\x01\x02") + 24):
        data[offset:offset + 4] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        safe_extract(archive, target, LIMITS)
    assert not target.exists()


def test_safe_archives_extract_and_keep_their_layout(sandbox):
    root, target = sandbox
    archive = write_zip(root / "ok.zip", {"train/cat.1.jpg": b"c", "train/dog.1.jpg": b"d", "./test/1.jpg": b"t"})
    written = safe_extract(archive, target, LIMITS)
    assert sorted(p.relative_to(target).as_posix() for p in written) == [
        "test/1.jpg", "train/cat.1.jpg", "train/dog.1.jpg",
    ]
    assert (target / "train" / "dog.1.jpg").read_bytes() == b"d"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # staging removed


def test_plans_rename_and_refuse_existing_outputs(sandbox):
    root, target = sandbox
    archive = write_zip(root / "ms.zip", {"PetImages/Cat/7.jpg": b"cat"})
    extract_members(archive, target, {"PetImages/Cat/7.jpg": "train/cat.7.jpg"}, LIMITS)
    assert (target / "train" / "cat.7.jpg").read_bytes() == b"cat"
    with pytest.raises(ValueError, match="already exists"):
        extract_members(archive, target, {"PetImages/Cat/7.jpg": "train/cat.7.jpg"}, LIMITS)
    with pytest.raises(ValueError, match="no member"):
        extract_members(archive, target, {"PetImages/Dog/7.jpg": "train/dog.7.jpg"}, LIMITS)


def test_verify_zip_rejects_truncated_and_non_zip_files(tmp_path):
    good = write_zip(tmp_path / "good.zip", {"a.txt": b"hello" * 1000})
    verify_zip(good)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable zip"):
        verify_zip(truncated)
    damaged = bytearray(good.read_bytes())
    damaged[40] ^= 0xFF  # inside the compressed data: the CRC check catches it
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="damaged"):
        verify_zip(tmp_path / "damaged.zip")
    with pytest.raises(ValueError, match="damaged"):
        safe_extract(tmp_path / "damaged.zip", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="not found"):
        verify_zip(tmp_path / "missing.zip")


def test_safe_member_path_normalises_harmless_names():
    assert safe_member_path("./train//cat.1.jpg").as_posix() == "train/cat.1.jpg"
    with pytest.raises(ValueError):
        safe_member_path("")
