"""Running a stage or the ``catsdogs`` command: the one logging set-up, and the one rule
that turns bad input into a one-line message and an exit code instead of a traceback.

Bad params or input raise ``ValueError``; a file the stage cannot read or write
raises ``OSError``. Either ends the process with exit code 1 and one line naming
what failed; Ctrl-C ends it with 130. ``CATSDOGS_DEBUG=1`` shows the traceback
instead; ``CATSDOGS_LOG_LEVEL`` sets the log level (stages: INFO, the command: WARNING).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
STAGE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMMAND_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(name: str, default_level: str = "INFO", fmt: str = STAGE_FORMAT) -> logging.Logger:
    """Configure root logging to stderr once (level from CATSDOGS_LOG_LEVEL) and return a named logger."""
    level = os.environ.get("CATSDOGS_LOG_LEVEL", default_level).upper()
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")
    return logging.getLogger(name)


def call(main: Callable[[], int | None], report: Callable[[Exception | None], None]) -> int:
    """Call ``main`` and return its exit code; ``report`` gets a ValueError/OSError, or None on Ctrl-C."""
    try:
        return main() or EXIT_OK
    except (ValueError, OSError) as error:
        if os.environ.get("CATSDOGS_DEBUG"):
            raise
        report(error)
        return EXIT_ERROR
    except KeyboardInterrupt:
        report(None)
        return EXIT_INTERRUPTED


def _run_logged(name: str, main: Callable[[], object]) -> None:
    """Run ``main`` with logging set up; exit with 1 (one logged line) on bad input, 130 on Ctrl-C."""
    logger = setup_logging(name)

    def report(error: Exception | None) -> None:
        if error is None:
            logger.error("%s interrupted", name)
        else:
            logger.error("%s failed: %s", name, error)

    def logged() -> None:
        main()  # what a stage's main returns is not an exit code

    code = call(logged, report)
    if code != EXIT_OK:
        sys.exit(code)


def run_stage(name: str, main: Callable[[], object]) -> None:
    """Run a stage's ``main`` with logging set up, after removing what killed runs left near the outputs of
    every stage (:func:`catsdogs.core.debris.remove_debris`); exit with 1 (one logged line) on bad input,
    130 on Ctrl-C."""

    def stage() -> None:
        from catsdogs.core.debris import remove_debris

        # Every stage's, not only this one's: a stage that DVC restores from its run cache, or finds
        # unchanged, never starts to remove what its killed run left.
        remove_debris(name)
        main()

    _run_logged(name, stage)


def run_sweep() -> None:
    """``python -m catsdogs.stages --sweep``: remove what killed runs left near every stage's outputs (makers
    gone only) without running a stage; one line and exit code 1 outside a pipeline checkout or on bad files."""
    from catsdogs.core.debris import sweep_debris

    _run_logged("sweep", sweep_debris)


def run_command(name: str, main: Callable[[], int]) -> int:
    """Run a ``catsdogs`` sub-command; its errors are one ``catsdogs <name>: ...`` line on stderr."""
    setup_logging(f"catsdogs.{name}", default_level="WARNING", fmt=COMMAND_FORMAT)

    def report(error: Exception | None) -> None:
        print(f"catsdogs {name}: " + ("interrupted" if error is None else f"error: {error}"), file=sys.stderr)

    return call(main, report)
