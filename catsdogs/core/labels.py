"""The two classes and the file names they travel under: the one place for both.

Labels follow Kaggle: cat = 0, dog = 1, the index in every tuple here. Class
folders (``cats``, ``dogs``) sort in label order, as Keras' directory layout expects.

Kaggle's file names come in two strengths, deliberately: names as they *arrive*
in a download or a folder (any case, ``.jpeg`` too) are matched loosely and
rewritten by the download stage to the *canonical* names (``cat.12.jpg``,
``12.jpg``), so every later stage matches only the canonical ones.
"""

from __future__ import annotations

import re

CLASS_FOLDERS = ("cats", "dogs")  # the split's folders
CLASS_LABELS = ("cat", "dog")  # what reports, predictions and Kaggle's names call them

# Kaggle's ids have at most 5 digits; a longer number is no Kaggle photo, and past Python's
# int() limit or a file name's length it would fail where it is used. ASCII digits only:
# Python's \d also takes Arabic-Indic, fullwidth and other digits (and int() reads them).
MAX_ID_DIGITS = 9
_ID = rf"0*([0-9]{{1,{MAX_ID_DIGITS}}})"
# Canonical names: data/raw and the split hold only these. Matched whole with fullmatch
# (re.match's $ would accept a trailing newline).
TRAIN_NAME = re.compile(r"(cat|dog)\.([1-9][0-9]{0,%d}|0)\.jpg" % (MAX_ID_DIGITS - 1))
TEST_NAME = re.compile(r"([1-9][0-9]{0,%d}|0)\.jpg" % (MAX_ID_DIGITS - 1))
# Names as they arrive (archives, folders): rewritten to the canonical ones on download.
ARRIVING_TRAIN_NAME = re.compile(rf"(cat|dog)\.{_ID}\.jpe?g", re.IGNORECASE | re.ASCII)
ARRIVING_TEST_NAME = re.compile(rf"{_ID}\.jpe?g", re.IGNORECASE | re.ASCII)

# Files the readers (training, evaluation, submission, `catsdogs predict`) take as images:
# the formats TensorFlow's decoder and the split's normalisation both handle.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Archive members that count as photos with an unrecognised name (rather than "not an image"):
# Kaggle and Microsoft ship JPEGs only, so a PNG in an archive is not one of their photos.
ARCHIVE_PHOTO_SUFFIXES = (".jpg", ".jpeg")


def parse_train_name(name: str) -> tuple[int, int] | None:
    """``cat.12.jpg`` -> (0, 12), ``dog.3.jpg`` -> (1, 3); None for any name that is not canonical."""
    match = TRAIN_NAME.fullmatch(name)
    if match is None:
        return None
    return CLASS_LABELS.index(match.group(1)), int(match.group(2))


def canonical_train_name(file_name: str) -> str | None:
    """``cat.N.jpg`` / ``dog.N.jpg`` for an arriving train file name (any case, .jpeg too), else None."""
    match = ARRIVING_TRAIN_NAME.fullmatch(file_name)
    return f"{match.group(1).lower()}.{int(match.group(2))}.jpg" if match else None


def canonical_test_name(file_name: str) -> str | None:
    """``N.jpg`` for an arriving test file name, else None."""
    match = ARRIVING_TEST_NAME.fullmatch(file_name)
    return f"{int(match.group(1))}.jpg" if match else None


def kaggle_test_id(file_name: str) -> int | None:
    """The id of a canonical test name (``12.jpg`` -> 12), else None."""
    match = TEST_NAME.fullmatch(file_name)
    return int(match.group(1)) if match else None


def numeric_stem(path_name: str) -> int | None:
    """The number a file's stem spells in ASCII digits (``0012.png`` -> 12), else None: for sorting names
    numerically. ``str.isdigit`` would accept ``²`` and other digits ``int()`` cannot read."""
    stem = path_name.rsplit(".", 1)[0] if "." in path_name else path_name
    match = re.fullmatch(_ID, stem)
    return int(match.group(1)) if match else None
