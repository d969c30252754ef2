"""Recognising the archive layouts the data ships in, from member names alone (no I/O).

Recognised, in any folder depth of the archive:

- Kaggle: ``train/cat.N.jpg``, ``train/dog.N.jpg`` (any folder that is not a
  test folder) and ``test/N.jpg`` or ``test1/N.jpg`` (the older competition).
- Microsoft: ``PetImages/Cat/N.jpg`` and ``PetImages/Dog/N.jpg``, renamed to
  Kaggle's ``cat.N.jpg`` / ``dog.N.jpg``. No test set.
- Nested: ``train*.zip`` / ``test*.zip`` members, as Kaggle's "download all"
  archive (and its server-side ``train.zip.zip`` wrapper) ships them; used only
  when the archive holds no images of its own.

Everything else is skipped and counted by reason: ``empty`` (0 bytes), ``not an
image`` (Thumbs.db, .csv, ...), ``unrecognised name`` (a .jpg outside the layout),
``macOS metadata`` (``__MACOSX/``). Output names are always ``.jpg``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from catsdogs.core.labels import ARCHIVE_PHOTO_SUFFIXES, canonical_test_name, canonical_train_name

TEST_FOLDERS = ("test", "test1")
NESTED_ZIP = re.compile(r"(train|test)[^/]*\.zip", re.IGNORECASE | re.ASCII)  # matched whole (fullmatch)


@dataclass
class Plan:
    """Where each archive member goes: train and test file names, nested archives, skips."""

    train: dict[str, str] = field(default_factory=dict)  # member -> cat.N.jpg / dog.N.jpg
    test: dict[str, str] = field(default_factory=dict)  # member -> N.jpg
    nested: list[str] = field(default_factory=list)  # members that are train*/test* zips
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    layouts: set[str] = field(default_factory=set)  # "kaggle", "microsoft"


def skip_reason(name: str) -> str:
    """Why a file that fits no layout is skipped (for the counts in the log)."""
    return "unrecognised name" if PurePosixPath(name).suffix.lower() in ARCHIVE_PHOTO_SUFFIXES else "not an image"


def _place(plan: Plan, member: str, size: int, parts: list[str]) -> None:
    """Put one file member into the plan (or count why it is skipped)."""
    folders = [part.lower() for part in parts[:-1]]
    base = parts[-1]
    if "__macosx" in folders or base.startswith("._"):
        plan.skipped["macOS metadata"] += 1
        return
    if len(folders) >= 2 and folders[-2] == "petimages" and folders[-1] in ("cat", "dog"):
        number = canonical_test_name(base)  # Microsoft names its files N.jpg
        if number is None:
            plan.skipped[skip_reason(base)] += 1
        elif size == 0:
            plan.skipped["empty"] += 1
        else:
            plan.train[member] = f"{folders[-1]}.{number}"
            plan.layouts.add("microsoft")
        return
    in_test_folder = bool(folders) and folders[-1] in TEST_FOLDERS
    output = canonical_test_name(base) if in_test_folder else canonical_train_name(base)
    if output is not None:
        if size == 0:
            plan.skipped["empty"] += 1
        else:
            (plan.test if in_test_folder else plan.train)[member] = output
            plan.layouts.add("kaggle")
    elif NESTED_ZIP.fullmatch(base):
        plan.nested.append(member)
    else:
        plan.skipped[skip_reason(base)] += 1


def _check_unique(mapping: dict[str, str], what: str) -> None:
    """``ValueError`` when two members would be written to the same file."""
    seen: dict[str, str] = {}
    for member, output in mapping.items():
        if output in seen:
            raise ValueError(f"two {what} members map to {output}: {seen[output]!r} and {member!r}")
        seen[output] = member


def plan_members(members: Iterable[tuple[str, int]], source: str = "archive") -> Plan:
    """Classify ``(name, size)`` members into a :class:`Plan`; ``ValueError`` if no layout fits."""
    plan = Plan()
    names = []
    for name, size in members:
        if name.endswith("/"):
            continue  # folder entries
        names.append(name)
        _place(plan, name, size, [part for part in name.split("/") if part not in ("", ".")])
    if len(plan.layouts) > 1:
        raise ValueError(
            f"{source} mixes Kaggle (train/cat.N.jpg) and Microsoft (PetImages/Cat/N.jpg) layouts: "
            "give one layout per archive"
        )
    if (plan.train or plan.test) and plan.nested:
        plan.skipped["nested archive ignored"] += len(plan.nested)
        plan.nested = []
    elif not (plan.train or plan.test or plan.nested):
        shown = ", ".join(repr(name) for name in names[:5]) or "no files"
        raise ValueError(
            f"{source} has no recognisable layout: expected Kaggle's train/cat.N.jpg, train/dog.N.jpg "
            f"(and test/N.jpg), nested train.zip/test.zip, or Microsoft's PetImages/Cat|Dog/N.jpg; "
            f"found {shown}"
        )
    _check_unique(plan.train, "train")
    _check_unique(plan.test, "test")
    return plan
