"""Safe zip extraction: every member is checked before a single byte is written.

Refused: absolute names (``/x``, ``\\x``, ``C:x``), names with a ``..`` part,
two members with the same name, symlinks and other special files (read from the
Unix mode in the zip's external attributes), encrypted members, compression
methods and other features :mod:`zipfile` cannot read (each would fail half-way
through with a ``RuntimeError`` or ``NotImplementedError``; an archive that needs a
newer zip version fails as it opens), and archives past the limits on
member count, total uncompressed size or compression ratio (``download.limits``).
All of these are read from the central directory, before anything is
decompressed (:func:`verify_zip` checks them before it tests the CRCs).

One :class:`Budget` covers a whole extraction: archives nested in archives draw
on the same member count and byte total, so nesting cannot multiply the limits.
The budget counts declared sizes, and that is a real bound: :mod:`zipfile` never
returns more of a member than its declared size (a member whose data runs longer
fails its CRC check as damaged).

Members are written into a temporary folder beside the destination and only
then moved into place, so a refused or failed extraction leaves the destination
as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# Members smaller than this are exempt from the per-member ratio check: a small
# file of zeros compresses extremely well and is harmless; the archive's overall
# ratio and total size still apply to them.
RATIO_FLOOR_BYTES = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
# Bit 0 of a member's general-purpose flags: the data is encrypted (zipfile needs a password, and
# raises RuntimeError without one).
ENCRYPTED_FLAG = 0x1
# Bits 6 (strong encryption) and 5 (compressed patched data): zipfile raises NotImplementedError for
# each, even where bit 0 is clear.
STRONG_ENCRYPTION_FLAG = 0x40
PATCHED_DATA_FLAG = 0x20
# The compression methods zipfile reads; any other (AES-encrypted entries say 99) raises NotImplementedError.
READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
# Names for the message: zipfile's own table, plus the methods it does not name.
COMPRESSION_NAMES = {**getattr(zipfile, "compressor_names", {}), 93: "zstandard", 95: "xz", 99: "AES encryption"}


@dataclass(frozen=True)
class Limits:
    """The limits that refuse archive bombs (``download.limits``)."""

    max_members: int
    max_total_bytes: int
    max_ratio: float


@dataclass
class Budget:
    """What one whole extraction (nested archives included) has used of its :class:`Limits`."""

    limits: Limits
    members: int = 0
    total_bytes: int = 0

    def spend(self, members: int, total_bytes: int, archive: str) -> None:
        """Count ``members`` files of ``total_bytes`` about to be written; ``ValueError`` past the limits."""
        if self.members + members > self.limits.max_members:
            raise ValueError(
                f"archive refused: extracting {archive} would make {self.members + members} files in all "
                f"(nested archives included), over download.limits.max_members={self.limits.max_members}"
            )
        if self.total_bytes + total_bytes > self.limits.max_total_bytes:
            raise ValueError(
                f"archive refused: extracting {archive} would write {self.total_bytes + total_bytes} bytes in all "
                f"(nested archives included), over download.limits.max_total_bytes={self.limits.max_total_bytes}"
            )
        self.members += members
        self.total_bytes += total_bytes


def safe_member_path(name: str) -> PurePosixPath:
    """A member name as a relative path, or ``ValueError`` if it is absolute or climbs out with ``..``."""
    if "\x00" in name:
        raise ValueError(f"unsafe archive member {name!r}: NUL in its name")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise ValueError(f"unsafe archive member {name!r}: absolute path")
    # Windows tools sometimes write backslashes: treat them as separators for the check.
    parts = [part for part in re.split(r"[/\\]", name) if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"unsafe archive member {name!r}: '..' would escape the destination")
    if not parts:
        raise ValueError(f"unsafe archive member {name!r}: empty path")
    return PurePosixPath(*parts)


def _member_type(info: zipfile.ZipInfo) -> int:
    """The file-type bits of the member's Unix mode (0 where the archiver recorded none)."""
    return stat.S_IFMT(info.external_attr >> 16)


def check_members(
    infos: Sequence[zipfile.ZipInfo], limits: Limits, ratio_floor_bytes: int = RATIO_FLOOR_BYTES,
    archive: str = "the archive",
) -> None:
    """Refuse an archive whose members are unsafe, unreadable or past the limits (``ValueError``;
    ``archive`` names it in the messages about members it cannot read)."""
    if len(infos) > limits.max_members:
        raise ValueError(
            f"archive refused: {len(infos)} members, over download.limits.max_members={limits.max_members}"
        )
    total = 0
    compressed = 0
    seen: dict[PurePosixPath, str] = {}
    for info in infos:
        path = safe_member_path(info.filename)
        if not info.is_dir():
            if path in seen:
                raise ValueError(
                    f"archive refused: two members named {path} ({seen[path]!r} and {info.filename!r}); "
                    "which one is meant?"
                )
            seen[path] = info.filename
        if info.flag_bits & ENCRYPTED_FLAG:
            raise ValueError(f"archive refused: member {info.filename!r} of {archive} is encrypted (give an archive without a password)")
        if info.flag_bits & STRONG_ENCRYPTION_FLAG:
            raise ValueError(
                f"archive refused: member {info.filename!r} of {archive} is encrypted (strong encryption, flag bit 6): "
                "give an archive without a password"
            )
        if info.flag_bits & PATCHED_DATA_FLAG:
            raise ValueError(
                f"archive refused: member {info.filename!r} of {archive} holds compressed patched data (flag bit 5), "
                "which cannot be read: repack it with deflate"
            )
        if info.compress_type not in READABLE_METHODS:
            method = COMPRESSION_NAMES.get(info.compress_type, "unknown")
            raise ValueError(
                f"archive refused: member {info.filename!r} of {archive} uses compression method {info.compress_type} ({method}), "
                "which cannot be read: repack it with deflate"
            )
        kind = _member_type(info)
        if kind == stat.S_IFLNK:
            raise ValueError(f"archive refused: member {info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ValueError(f"archive refused: member {info.filename!r} is not a regular file or folder")
        total += info.file_size
        compressed += info.compress_size
        if info.file_size >= ratio_floor_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ValueError(
                    f"archive refused: member {info.filename!r} expands {ratio:.0f}x, "
                    f"over download.limits.max_ratio={limits.max_ratio:g} (a zip bomb?)"
                )
    if total > limits.max_total_bytes:
        raise ValueError(
            f"archive refused: {total} bytes uncompressed, over download.limits.max_total_bytes="
            f"{limits.max_total_bytes}"
        )
    if total >= ratio_floor_bytes and total / max(compressed, 1) > limits.max_ratio:
        raise ValueError(
            f"archive refused: expands {total / max(compressed, 1):.0f}x overall, "
            f"over download.limits.max_ratio={limits.max_ratio:g} (a zip bomb?)"
        )


def open_zip(archive: str | Path) -> zipfile.ZipFile:
    """Open a zip archive, turning a missing, corrupt or unreadable file (one that needs a newer zip
    version than :mod:`zipfile` reads) into a clear ``ValueError``."""
    archive = Path(archive)
    if not archive.is_file():
        raise ValueError(f"archive not found: {archive}")
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as error:
        raise ValueError(f"{archive} is not a readable zip archive ({error})") from None


def list_members(archive: str | Path) -> list[zipfile.ZipInfo]:
    """The archive's members (files and folders), in archive order."""
    with open_zip(archive) as zip_file:
        return zip_file.infolist()


def verify_zip(archive: str | Path, limits: Limits, name: str | None = None) -> None:
    """Check the members against ``limits`` (nothing decompressed yet), then every CRC; ``ValueError`` if unsound
    (``name``: what the messages about members call the archive, by default its file name)."""
    with open_zip(archive) as zip_file:
        check_members(zip_file.infolist(), limits, archive=name or Path(archive).name)
        try:
            bad = zip_file.testzip()  # reads each member up to its declared size, no further
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
            raise ValueError(f"{archive} is a damaged zip archive ({error})") from None
    if bad is not None:
        raise ValueError(f"{archive} is a damaged zip archive (bad CRC in member {bad!r})")


def extract_members(
    archive: str | Path, destination: str | Path, plan: Mapping[str, str], budget: Budget
) -> list[Path]:
    """Extract the members named in ``plan`` (member name -> relative output path) under ``destination``.

    The whole archive is checked first (one unsafe member refuses all of it) and
    the planned members are charged to ``budget``; the files are written to a
    temporary folder beside ``destination`` and then moved in. An output path that
    already exists is refused before anything is written.
    """
    destination = Path(destination)
    with open_zip(archive) as zip_file:
        infos = zip_file.infolist()
        check_members(infos, budget.limits, archive=Path(archive).name)
        by_name = {info.filename: info for info in infos}
        missing = [name for name in plan if name not in by_name]
        if missing:
            raise ValueError(f"{archive} has no member {missing[0]!r}")
        outputs: dict[str, PurePosixPath] = {}
        seen: dict[PurePosixPath, str] = {}
        for name, relative in plan.items():
            output = safe_member_path(relative)
            if output in seen:
                raise ValueError(f"{archive}: members {seen[output]!r} and {name!r} both map to {output}")
            if (destination / output).exists():
                raise ValueError(f"{destination / output} already exists (two sources for the same image?)")
            seen[output] = name
            outputs[name] = output
        budget.spend(len(outputs), sum(by_name[name].file_size for name in outputs), Path(archive).name)

        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.extract-", dir=destination.parent))
        try:
            for name, output in outputs.items():
                info = by_name[name]
                path = staging / output
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zip_file.open(info) as source, open(path, "xb") as target:
                        shutil.copyfileobj(source, target)  # zipfile stops at the declared size
                except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                    raise ValueError(f"{archive}: member {name!r} is damaged ({error})") from None
            written = []
            for output in outputs.values():
                target = destination / output
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / output, target)
                written.append(target)
            return written
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive: str | Path, destination: str | Path, limits: Limits) -> list[Path]:
    """Extract every file of the archive under ``destination``, keeping member paths (checked first)."""
    members = list_members(archive)
    # Check before planning, so an unsafe name is reported as such, not as a bad plan.
    check_members(members, limits, archive=Path(archive).name)
    plan = {info.filename: str(safe_member_path(info.filename)) for info in members if not info.is_dir()}
    return extract_members(archive, destination, plan, Budget(limits))
