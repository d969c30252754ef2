"""Safe extraction: crafted archives are refused before anything is written."""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path

import pytest

from catsdogs.core.extract import (
    Budget,
    check_members,
    extract_members,
    safe_extract,
    safe_member_path,
    verify_zip,
)
from catsdogs.core.params import ExtractionLimits

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
        extract_members(archive, target, {"cat.1.jpg": "../escaped.jpg"}, Budget(LIMITS))
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


def lying_zip(path: Path, patch_crc: bool) -> Path:
    """A stored member of 5,000 bytes whose headers declare 100 (and, if asked, the CRC of those 100)."""
    archive = write_zip(path, {"a.bin": bytes(range(250)) * 20}, compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zip_file:
        info = zip_file.getinfo("a.bin")
    central = data.rfind(b"PK\x01\x02")
    # Declared uncompressed size: local header offset 22, central directory offset 24; CRC: 14 and 16.
    for offset in (info.header_offset + 22, central + 24):
        data[offset:offset + 4] = (100).to_bytes(4, "little")
    if patch_crc:
        crc = zlib.crc32(bytes(range(100)))
        for offset in (info.header_offset + 14, central + 16):
            data[offset:offset + 4] = crc.to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    return archive


def test_a_member_larger_than_its_header_declares_is_cut_at_the_declared_size(sandbox):
    # zipfile never returns more than the declared size: the budget, counted from declared sizes, holds.
    root, target = sandbox
    written = safe_extract(lying_zip(root / "liar.zip", patch_crc=True), target, LIMITS)
    assert [path.read_bytes() for path in written] == [bytes(range(100))]
    # With the CRC of the whole 5,000 bytes, the 100 bytes fail the check: refused as damaged.
    with pytest.raises(ValueError, match=r"liar\.zip: member 'a\.bin' is damaged \(Bad CRC-32"):
        safe_extract(lying_zip(root / "liar.zip", patch_crc=False), root / "other", LIMITS)
    assert not (root / "other").exists()


def test_two_members_with_the_same_name_are_refused(sandbox):
    root, target = sandbox
    archive = root / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zip_file, pytest.warns(UserWarning, match="Duplicate name"):
        zip_file.writestr("train/cat.1.jpg", b"first")
        zip_file.writestr("train/cat.1.jpg", b"second")
        zip_file.writestr("./train//dog.1.jpg", b"first")
        zip_file.writestr("train/dog.1.jpg", b"second")
    with pytest.raises(ValueError, match=r"two members named train/cat\.1\.jpg"):
        safe_extract(archive, target, LIMITS)
    with pytest.raises(ValueError, match="two members named"):
        verify_zip(archive, LIMITS)
    assert not target.exists()
    with zipfile.ZipFile(root / "aliases.zip", "w") as zip_file:  # two spellings of one path
        zip_file.writestr("./train//dog.1.jpg", b"first")
        zip_file.writestr("train/dog.1.jpg", b"second")
    with pytest.raises(ValueError, match=r"two members named train/dog\.1\.jpg \('\./train//dog\.1\.jpg' and"):
        safe_extract(root / "aliases.zip", target, LIMITS)


def test_verify_zip_checks_the_limits_before_decompressing_anything(tmp_path, monkeypatch):
    bomb = write_zip(tmp_path / "bomb.zip", {f"train/cat.{i}.jpg": bytes(2 << 20) for i in range(4)})
    assert bomb.stat().st_size < 100_000  # 8 MiB of zeros
    opened = []
    original_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or original_open(self, *a, **k))
    with pytest.raises(ValueError, match="max_total_bytes=3000000"):
        verify_zip(bomb, ExtractionLimits(max_total_bytes=3_000_000, max_ratio=1e5))
    with pytest.raises(ValueError, match="max_ratio=200"):
        verify_zip(bomb, LIMITS)
    assert opened == []  # refused from the central directory alone
    verify_zip(bomb, ExtractionLimits(max_ratio=1e5))
    assert len(opened) == 4  # a sound archive within the limits: every member's CRC is tested


def test_one_budget_covers_several_extractions(sandbox):
    root, target = sandbox
    first = write_zip(root / "a.zip", {"a.bin": b"x" * 600})
    second = write_zip(root / "b.zip", {"b.bin": b"y" * 600})
    budget = Budget(ExtractionLimits(max_total_bytes=1000))
    extract_members(first, target / "a", {"a.bin": "a.bin"}, budget)
    with pytest.raises(ValueError, match=r"1200 bytes in all \(nested .*, over download.limits.max_total_bytes=1000"):
        extract_members(second, target / "b", {"b.bin": "b.bin"}, budget)
    assert not (target / "b").exists()
    budget = Budget(ExtractionLimits(max_members=1))
    extract_members(first, target / "c", {"a.bin": "a.bin"}, budget)
    with pytest.raises(ValueError, match=r"2 files in all .*max_members=1"):
        extract_members(second, target / "d", {"b.bin": "b.bin"}, budget)


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
    extract_members(archive, target, {"PetImages/Cat/7.jpg": "train/cat.7.jpg"}, Budget(LIMITS))
    assert (target / "train" / "cat.7.jpg").read_bytes() == b"cat"
    with pytest.raises(ValueError, match="already exists"):
        extract_members(archive, target, {"PetImages/Cat/7.jpg": "train/cat.7.jpg"}, Budget(LIMITS))
    with pytest.raises(ValueError, match="no member"):
        extract_members(archive, target, {"PetImages/Dog/7.jpg": "train/dog.7.jpg"}, Budget(LIMITS))


def test_verify_zip_rejects_truncated_and_non_zip_files(tmp_path):
    good = write_zip(tmp_path / "good.zip", {"a.txt": b"hello" * 1000})
    verify_zip(good, LIMITS)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable zip"):
        verify_zip(truncated, LIMITS)
    damaged = bytearray(good.read_bytes())
    damaged[40] ^= 0xFF  # inside the compressed data: the CRC check catches it
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="damaged"):
        verify_zip(tmp_path / "damaged.zip", LIMITS)
    with pytest.raises(ValueError, match="damaged"):
        safe_extract(tmp_path / "damaged.zip", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="not found"):
        verify_zip(tmp_path / "missing.zip", LIMITS)


def test_safe_member_path_normalises_harmless_names():
    assert safe_member_path("./train//cat.1.jpg").as_posix() == "train/cat.1.jpg"
    with pytest.raises(ValueError):
        safe_member_path("")


def patched_zip(
    path: Path, members: dict[str, bytes], *, flags: int = 0, method: int | None = None, version: int | None = None
) -> Path:
    """A zip whose members' headers (local and central) claim other flags, another compression method or
    another "version needed to extract", as an encrypting or newer archiver writes them (zipfile raises
    RuntimeError / NotImplementedError on reading)."""
    write_zip(path, members, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + flags_at] |= flags
            if method is not None:
                data[start + flags_at + 2:start + flags_at + 4] = method.to_bytes(2, "little")
            if version is not None:  # the two bytes before the flags
                data[start + flags_at - 2:start + flags_at] = version.to_bytes(2, "little")
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"flags": 0x1}, r"member 'cat\.1\.jpg' of locked\.zip is encrypted"),
        ({"method": 99}, r"member 'cat\.1\.jpg' of locked\.zip uses compression method 99 \(AES encryption\), which cannot"),
        ({"method": 9}, r"uses compression method 9 \(deflate64\)"),
        # The two other flags zipfile refuses with NotImplementedError, even without bit 0.
        ({"flags": 0x40}, r"member 'cat\.1\.jpg' of locked\.zip is encrypted \(strong encryption, flag bit 6\)"),
        ({"flags": 0x20}, r"member 'cat\.1\.jpg' of locked\.zip holds compressed patched data \(flag bit 5\)"),
    ],
)
def test_encrypted_and_unreadable_members_are_refused_in_one_line(sandbox, patch, expected):
    root, target = sandbox
    archive = patched_zip(root / "locked.zip", {"cat.1.jpg": b"photo", "dog.1.jpg": b"photo"}, **patch)
    for action in (lambda: safe_extract(archive, target, LIMITS), lambda: verify_zip(archive, LIMITS)):
        with pytest.raises(ValueError, match=expected) as error:
            action()
        assert "\n" not in str(error.value)
    assert not target.exists()


def test_a_zip_needing_a_newer_zip_version_is_refused_in_one_line(sandbox):
    # zipfile raises NotImplementedError while reading the central directory (version 6.4 > 6.3).
    root, target = sandbox
    archive = patched_zip(root / "new.zip", {"cat.1.jpg": b"photo"}, version=64)
    for action in (lambda: safe_extract(archive, target, LIMITS), lambda: verify_zip(archive, LIMITS)):
        with pytest.raises(ValueError, match=r"new\.zip is not a readable zip archive \(zip file version 6\.4\)") as error:
            action()
        assert "\n" not in str(error.value)
    assert not target.exists()
