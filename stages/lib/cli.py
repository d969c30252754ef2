"""Running a stage's main(): clear one-line errors instead of tracebacks for bad input."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from stages.lib.logs import setup_logging


def run_stage(name: str, main: Callable[[], object]) -> None:
    """Call ``main``; a ``ValueError`` (bad params or input) or ``OSError`` exits 1 with one logged line.

    Set CATSDOGS_DEBUG=1 to get the full traceback instead.
    """
    import os

    logger = setup_logging(name)
    try:
        main()
    except (ValueError, OSError) as error:
        if os.environ.get("CATSDOGS_DEBUG"):
            raise
        logger.error("%s failed: %s", name, error)
        sys.exit(1)
    except KeyboardInterrupt:
        logging.getLogger(name).error("%s interrupted", name)
        sys.exit(130)
