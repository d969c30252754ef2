"""The download stage's sources: each fills a raw/ tree with Kaggle-named images.

Every source writes ``cat.N.jpg`` / ``dog.N.jpg`` into ``outputs.train`` and, where
it has a test set, ``N.jpg`` into ``outputs.test``; it returns skipped-file counts
by reason. Sources (``download.source``):

- ``kaggle``: the competition's ``kaggle_files`` through the official client.
- ``microsoft``: the public ``kagglecatsanddogs_5340.zip`` (PetImages/Cat|Dog/N.jpg).
- ``url`` / ``archive``: a zip by http(s) URL or on disk, in any layout that
  :mod:`catsdogs.sources.layouts` recognises (Kaggle folders, nested zips, Microsoft).
  The URL is ``download.url``, or the value of the environment variable that
  ``download.url_env`` names (for a signed URL, whose token must stay out of
  params.yaml and dvc.lock).
- ``dir``: a folder of Kaggle-named images, or a list of them read in order into
  one set. Each may be either the ``train/`` folder itself, or a folder holding
  ``train/``; its test set is the ``test/`` folder beside that ``train/`` folder,
  when there is one (as in an unpacked Kaggle download). A name found in two
  folders (``cat.7.jpg``) with the same bytes is copied once and counted as a
  duplicate; with other bytes it stops the stage, naming both files. Only regular files directly in those folders are
  read, each opened without blocking and checked on the open file: FIFOs, devices,
  sockets, links that lead nowhere (or in a loop) are skipped and counted by reason.
  A symbolic link that leads out of its folder (to a secret, to /etc/passwd, to a
  photo elsewhere) would bring that file into data/, the DVC cache and the remote:
  it stops the stage, naming the link, unless ``download.follow_links`` is true
  (for a data set built out of links; the log then counts the files read that way).
- ``synthetic``: generated images (offline), seeded by ``common.seed``.

One extraction :class:`~catsdogs.core.extract.Budget` covers every archive a run
opens, nested ones included. Credentials never reach the output: the Kaggle
client's verbose mode (``VERBOSE=1``, which prints each request's Authorization
header) is switched off for our client, and whatever the client prints passes
through :func:`catsdogs.sources.http.redact`, as do the HTTP libraries' debug logs.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from catsdogs.core.extract import Budget, Limits, extract_members, list_members, verify_zip
from catsdogs.core.io import describe_non_file
from catsdogs.core.labels import canonical_test_name, canonical_train_name
from catsdogs.core.params import DownloadParams
from catsdogs.sources import layouts
from catsdogs.sources.http import (
    DownloadBudget,
    RedactingStream,
    display_url,
    download_file,
    redact_library_logs,
)
from catsdogs.sources.synthetic import write_kaggle_test, write_kaggle_train

logger = logging.getLogger(__name__)

MAX_NESTING = 2  # outer archive -> train.zip -> (a server-side wrapper) is as deep as Kaggle goes
DEFAULT_DOWNLOAD_NAME = "download.zip"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# The Kaggle client's command-line flags that make it print every request, headers included.
KAGGLE_VERBOSE_FLAGS = ("--verbose", "-v")
KAGGLE_LOGGERS = (
    "kaggle", "kaggle.api.kaggle_api_extended", "kagglesdk", "kagglesdk.kaggle_env", "kagglesdk.kaggle_oauth",
)
ALTERNATIVES = "microsoft (public mirror, no account), url, archive, dir or synthetic"
MISSING_CREDENTIALS = (
    "Kaggle credentials not found (or not accepted). Create an API token at "
    "https://www.kaggle.com/settings/api and put it in the KAGGLE_API_TOKEN environment variable or in ~/.kaggle/access_token (or a legacy "
    "key in ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY); or set download.source to "
    f"another source: {ALTERNATIVES}"
)


@dataclass(frozen=True)
class Outputs:
    """The folder being built (``root``) and the train and test folders inside it."""

    root: Path
    train: Path
    test: Path


def import_zip(archive: Path, outputs: Outputs, scratch: Path, budget: Budget, depth: int = 0) -> Counter:
    """Normalise one zip (any recognised layout) into the outputs; nested zips are opened in turn (same budget)."""
    members = list_members(archive)
    plan = layouts.plan_members(((m.filename, m.file_size) for m in members), source=archive.name)
    relative_train = outputs.train.relative_to(outputs.root)
    relative_test = outputs.test.relative_to(outputs.root)
    moves = {member: str(relative_train / name) for member, name in plan.train.items()}
    moves |= {member: str(relative_test / name) for member, name in plan.test.items()}
    skipped = Counter(plan.skipped)
    if moves:
        logger.info(
            "extracting %s: %s layout, %d train and %d test images of %d members",
            archive.name, "/".join(sorted(plan.layouts)), len(plan.train), len(plan.test), len(members),
        )
        extract_members(archive, outputs.root, moves, budget)
    for member in plan.nested:
        if depth >= MAX_NESTING:
            raise ValueError(f"{archive.name}: archives nested deeper than {MAX_NESTING} levels are refused")
        logger.info("opening nested archive %s in %s", member, archive.name)
        inner_dir = Path(tempfile.mkdtemp(prefix="nested-", dir=scratch))
        # The member's own name where it is plain and short; a long or odd one (a 300-character name is
        # past what a file system takes) gets a fixed one.
        inner = inner_dir / (Path(member).name if _SAFE_NAME.match(Path(member).name) else "nested.zip")
        extract_members(archive, inner_dir, {member: inner.name}, budget)
        skipped += import_zip(inner, outputs, scratch, budget, depth + 1)
        shutil.rmtree(inner_dir)
    return skipped


def _require_train(outputs: Outputs, where: str) -> None:
    """``ValueError`` unless the train folder now holds cat and dog images."""
    files = list(outputs.train.glob("*.jpg")) if outputs.train.is_dir() else []
    if not files:
        raise ValueError(f"{where} holds no train images (cat.N.jpg / dog.N.jpg)")


def download_name(url: str) -> str:
    """A safe local file name for a URL's download: its last path part if plain (``x.zip``), else download.zip.

    Plain means a letter or digit first, then letters, digits, ``.``, ``_``, ``-``:
    never ``..``, a hidden name, a separator or a percent-escape.
    """
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name if _SAFE_NAME.match(name) else DEFAULT_DOWNLOAD_NAME


def resolve_url(url: str, url_env: str) -> str:
    """The URL to download: ``download.url``, or the value of the environment variable ``download.url_env`` names."""
    if not url_env:
        if urlsplit(url).query:
            logger.warning(
                "download.url has a query string: it is recorded in params.yaml and dvc.lock. For a signed URL, "
                "put it in an environment variable and name that variable in download.url_env instead"
            )
        return url
    value = os.environ.get(url_env, "").strip()
    if not value:
        raise ValueError(
            f"download.url_env names the environment variable {url_env}, but it is not set (or empty): "
            f"export {url_env}=<the URL of the zip>"
        )
    return value


def from_url(url: str, outputs: Outputs, scratch: Path, *, budget: Budget, download: DownloadParams) -> Counter:
    """Download a zip (resumed, retried, bounded in time as ``download`` says, limits then CRCs verified),
    then normalise it."""
    name = download_name(url)
    allowed = DownloadBudget(download.retries, download.timeout_s, budget.limits.max_total_bytes,
                             download.deadline_s, download.max_retry_after_s)
    # Named as saved, not as the temporary part file verification reads.
    archive = download_file(url, scratch / name, allowed,
                            verify=lambda path: verify_zip(path, budget.limits, name=name))
    logger.info("verified %s", display_url(url))
    skipped = import_zip(archive, outputs, scratch, budget)
    archive.unlink()
    _require_train(outputs, "the downloaded archive")
    return skipped


def from_archive(path: str | Path, outputs: Outputs, scratch: Path, *, budget: Budget) -> Counter:
    """Normalise a zip already on disk."""
    path = Path(path).expanduser()
    if not path.exists() and not path.is_symlink():
        raise ValueError(f"download.archive not found: {path}")
    if not path.is_file():
        raise ValueError(f"download.archive {path}: {describe_non_file(path)}")
    skipped = import_zip(path, outputs, scratch, budget)
    _require_train(outputs, str(path))
    return skipped


@dataclass
class FolderReport:
    """What copying one folder did: files copied, files skipped (reason -> count), links followed out of it."""

    copied: int = 0
    skipped: Counter = field(default_factory=Counter)
    followed_out: int = 0


def _link_out(link, target: Path, folder: Path) -> ValueError:
    """The error for a symbolic link ``link`` that leads to ``target``, outside ``folder``."""
    return ValueError(
        f"download.dir: {link} is a symbolic link to {target}, outside {folder}: only files inside the "
        "folder are read. Set download.follow_links: true to read files that links lead to"
    )


def _inside(path: Path, folder: Path) -> bool:
    """Whether the resolved ``path`` lies inside the resolved ``folder``."""
    return path == folder or folder in path.parents


def _open_regular(entry: os.DirEntry, folder: Path, follow_links: bool) -> tuple[int | None, str | None, bool]:
    """Open one folder entry for reading if it is (or links to) a regular file: (fd, skip reason, left the folder).

    Links are resolved first: one that leads nowhere (missing, a loop) is skipped, one that leaves
    ``folder`` is refused (``ValueError``) unless ``follow_links``. The file is opened without
    following a link in its last part and without blocking (a FIFO would), and its type is read
    from the open file, so what is copied is what was checked.
    """
    target, left = entry.path, False
    if entry.is_symlink():
        try:
            resolved = Path(os.path.realpath(entry.path, strict=True))
        except (OSError, RuntimeError):  # missing target, a loop
            return None, "broken link", False
        left = not _inside(resolved, folder)
        if left and not follow_links:
            raise _link_out(entry.path, resolved, folder)
        target = str(resolved)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        return None, "unreadable" if error.errno != errno.ELOOP else "broken link", left
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        return None, "folder" if stat.S_ISDIR(mode) else "not a regular file", left
    return fd, None, left


DUPLICATE = "in an earlier folder with the same bytes"  # the skip reason of a repeated photo


def _same_bytes(handle, path: Path) -> bool:
    """Whether the open file ``handle`` (read from its current position) holds exactly the bytes of ``path``."""
    with open(path, "rb") as other:
        while True:
            chunk = handle.read(1 << 20)
            if chunk != other.read(len(chunk) or 1):
                return False
            if not chunk:
                return True


def _copy_folder(source: Path, target: Path, rename, follow_links: bool,
                 origins: dict[str, str] | None = None) -> FolderReport:
    """Copy the regular files directly in ``source`` whose name ``rename`` accepts, under their new names.

    Sub-folders are not read (and not counted). Special files (FIFOs, devices, sockets), links that
    lead nowhere, unreadable files, unrecognised names and empty files are skipped and counted by
    reason; a link out of ``source`` is refused unless ``follow_links`` (then it is counted).
    ``origins`` (new name -> the file it was copied from) spans the folders of one run: a name already
    copied from another folder is skipped as :data:`DUPLICATE` when the bytes are the same, and is a
    ``ValueError`` naming both files when they differ.
    """
    report = FolderReport()
    origins = {} if origins is None else origins
    target.mkdir(parents=True, exist_ok=True)
    folder = source.resolve()
    with os.scandir(folder) as entries:
        ordered = sorted(entries, key=lambda entry: entry.name)
    for entry in ordered:
        if entry.is_dir(follow_symlinks=False):
            continue
        name = rename(entry.name)
        if name is None:
            report.skipped[layouts.skip_reason(entry.name)] += 1
            continue
        fd, reason, left = _open_regular(entry, folder, follow_links)
        if fd is None:
            report.skipped[reason] += 1
            continue
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                report.skipped["empty"] += 1
                continue
            if name in origins:
                if Path(origins[name]).parent == Path(entry.path).parent:
                    raise ValueError(f"{origins[name]} and {entry.path} both map to {name}")
                if not _same_bytes(handle, target / name):
                    raise ValueError(f"download.dir: {origins[name]} and {entry.path} are both {name} with "
                                     "different bytes: two different photos under one name; rename or drop one")
                report.skipped[DUPLICATE] += 1
                continue
            if (target / name).exists():
                raise ValueError(f"{entry.path} and another file both map to {name}")
            with open(target / name, "xb") as copy:
                shutil.copyfileobj(handle, copy)
            origins[name] = entry.path
        report.copied += 1
        report.followed_out += left
    return report


def _folder_inside(folder: Path, parent: Path, follow_links: bool) -> Path:
    """``folder`` (a train/ or test/ folder found in ``parent``) resolved; a link out of ``parent`` is refused
    unless ``follow_links``."""
    resolved = folder.resolve()
    if folder.is_symlink() and not _inside(resolved, parent.resolve()) and not follow_links:
        raise _link_out(folder, resolved, parent)
    return resolved


def _summary(counts: Counter) -> str:
    """``empty 3, not an image 2`` (reasons sorted), or ``nothing`` for no counts."""
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())) or "nothing"


def _from_one_dir(directory: Path, train: Path, outputs: Outputs, follow_links: bool, origins: dict) -> tuple[Counter, int]:
    """One folder of ``download.dir`` and its ``train`` folder (see :func:`from_dir`): skipped counts, files
    read through links out."""
    if train != directory:
        _folder_inside(train, directory, follow_links)
    report = _copy_folder(train, outputs.train, canonical_train_name, follow_links, origins["train"])
    if not report.copied and not report.skipped[DUPLICATE]:
        raise ValueError(
            f"download.dir {train} holds no cat.N.jpg / dog.N.jpg images (skipped: {_summary(report.skipped)})"
        )
    logger.info("copied %d train images from %s", report.copied, train)
    skipped, followed_out = report.skipped, report.followed_out
    test = train.parent / "test"
    if test.is_dir() and test.resolve() != train.resolve():
        _folder_inside(test, train.parent, follow_links)
        test_report = _copy_folder(test, outputs.test, canonical_test_name, follow_links, origins["test"])
        logger.info("copied %d test images from %s", test_report.copied, test)
        skipped += test_report.skipped
        followed_out += test_report.followed_out
    return skipped, followed_out


def from_dir(directory: str | Path | list, outputs: Outputs, *, follow_links: bool = False) -> Counter:
    """Copy a Kaggle-style train folder (and the sibling test folder, if any), or each of a list of them in
    order into one set; see the module docstring."""
    folders = [directory] if isinstance(directory, (str, Path)) else list(directory)
    origins: dict[str, dict[str, str]] = {"train": {}, "test": {}}
    skipped, followed_out = Counter(), 0
    seen: dict[Path, str] = {}
    for folder in folders:
        directory = Path(folder).expanduser()
        if not directory.is_dir():
            raise ValueError(f"download.dir not found: {directory}")
        train = directory / "train" if (directory / "train").is_dir() else directory
        resolved = train.resolve()
        if resolved in seen:
            raise ValueError(f"download.dir lists the same photos twice: {seen[resolved]} and {folder} are both "
                             f"{resolved}")
        seen[resolved] = str(folder)
        folder_skipped, folder_followed = _from_one_dir(directory, train, outputs, follow_links, origins)
        skipped += folder_skipped
        followed_out += folder_followed
    if skipped[DUPLICATE]:
        logger.info("%d photos were in an earlier folder too, with the same bytes: copied once", skipped[DUPLICATE])
    if followed_out:
        logger.warning(
            "read %d files through symbolic links that lead out of their folder (download.follow_links: true)",
            followed_out,
        )
    return skipped


def from_synthetic(outputs: Outputs, *, count: int, size: int, test_count: int, seed: int) -> Counter:
    """Generate the synthetic train (and test) images."""
    logger.info("generating %d cats + %d dogs and %d test images (%dpx, seed %d)", count, count, test_count, size, seed)
    write_kaggle_train(outputs.train, count, size, seed)
    if test_count:
        write_kaggle_test(outputs.test, test_count, size, seed)
    return Counter()


@contextlib.contextmanager
def _redacted_client_output():
    """Pass what the Kaggle client prints (progress, retries, errors quoting signed URLs) through ``redact``."""
    redact_library_logs(*KAGGLE_LOGGERS)
    stdout, stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        yield


def kaggle_api():
    """An authenticated ``KaggleApi`` (imported lazily: ``import kaggle`` authenticates at import time)."""
    redact_library_logs(*KAGGLE_LOGGERS)
    # The client prints its own help to stdout when it finds no credentials; ours is clearer.
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        # VERBOSE=1 in the environment (read when the client is imported) adds --verbose to the
        # client's flags, and a verbose client prints every request with its Authorization header:
        # our client never runs verbose, whatever the environment says.
        api.args = [flag for flag in KaggleApi.args if flag not in KAGGLE_VERBOSE_FLAGS]
        try:
            api.authenticate()
        except SystemExit:
            raise ValueError(MISSING_CREDENTIALS) from None
        except requests.ConnectionError as error:
            reason = error.__class__.__name__
            raise ValueError(f"could not reach Kaggle to check the credentials ({reason})") from None
    return api


def _kaggle_error(error: requests.HTTPError, competition: str, file_name: str) -> ValueError:
    """A clear message for the client's HTTP errors (403: the rules are not accepted)."""
    status = error.response.status_code if error.response is not None else None
    if status == 403:
        return ValueError(
            f"Kaggle refused {competition}/{file_name} (403 Forbidden): accept the competition's rules at "
            f"https://www.kaggle.com/competitions/{competition}/rules with the account of your credentials, "
            f"then rerun; or set download.source to another source: {ALTERNATIVES}"
        )
    if status == 401:
        return ValueError(f"Kaggle rejected the credentials (401 Unauthorized). {MISSING_CREDENTIALS}")
    if status == 404:
        return ValueError(
            f"Kaggle has no file {file_name!r} in competition {competition!r} (404): "
            "check download.competition and download.kaggle_files"
        )
    return ValueError(f"Kaggle download of {competition}/{file_name} failed: HTTP {status}")


def _kaggle_file(api, competition: str, file_name: str, folder: Path) -> Path:
    """Download one competition file into an empty folder and return the file that arrived."""
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s from Kaggle competition %s", file_name, competition)
    try:
        with _redacted_client_output():
            api.competition_download_file(competition, file_name, path=str(folder), force=True, quiet=False)
    except requests.HTTPError as error:
        raise _kaggle_error(error, competition, file_name) from None
    except requests.RequestException as error:
        # The library's text quotes the signed download URL: name the failure, not the URL.
        raise ValueError(
            f"Kaggle download of {competition}/{file_name} failed: {error.__class__.__name__} (network trouble?)"
        ) from None
    # The client names the file after the download URL: large files arrive wrapped as NAME.zip.
    arrived = [path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")]
    if len(arrived) != 1:
        found = sorted(path.name for path in arrived)
        raise ValueError(f"expected one file from Kaggle for {file_name}, found {found}")
    return arrived[0]


def from_kaggle(outputs: Outputs, scratch: Path, *, competition: str, kaggle_files: dict, budget: Budget) -> Counter:
    """Download the competition's train (and test) archives with the Kaggle client and normalise them."""
    api = kaggle_api()
    skipped = Counter()
    for role in ("train", "test"):
        file_name = kaggle_files[role]
        if not file_name:
            continue
        archive = _kaggle_file(api, competition, file_name, scratch / f"kaggle-{role}")
        verify_zip(archive, budget.limits)
        folder = outputs.train if role == "train" else outputs.test
        before = len(list(folder.glob("*.jpg"))) if folder.is_dir() else 0
        skipped += import_zip(archive, outputs, scratch, budget)
        if (len(list(folder.glob("*.jpg"))) if folder.is_dir() else 0) == before:
            raise ValueError(f"Kaggle's {file_name} holds no {role} images in a recognised layout")
        archive.unlink()
    return skipped


def fetch(outputs: Outputs, scratch: Path, download: DownloadParams, seed: int) -> Counter:
    """Fill ``outputs`` from the source ``download`` (the download params) names, seeded by ``seed`` where it
    generates; return skipped counts by reason."""
    budget = Budget(Limits(**download.limits.model_dump()))  # one budget for every archive this run extracts
    source = download.source
    if source == "kaggle":
        return from_kaggle(
            outputs, scratch, competition=download.competition, kaggle_files=download.kaggle_files.model_dump(),
            budget=budget,
        )
    if source in ("microsoft", "url"):
        address = download.microsoft_url if source == "microsoft" else resolve_url(download.url, download.url_env)
        return from_url(address, outputs, scratch, budget=budget, download=download)
    if source == "archive":
        return from_archive(download.archive, outputs, scratch, budget=budget)
    if source == "dir":
        return from_dir(download.dir, outputs, follow_links=download.follow_links)
    if source == "synthetic":
        return from_synthetic(outputs, **download.synthetic.model_dump(), seed=seed)
    raise ValueError(f"download.source {source!r} is not one of kaggle, {ALTERNATIVES}")
