"""Logging set-up shared by the stages: one line per phase, to stderr."""

from __future__ import annotations

import logging
import os


def setup_logging(name: str) -> logging.Logger:
    """Configure root logging once (level from CATSDOGS_LOG_LEVEL) and return a named logger."""
    level = os.environ.get("CATSDOGS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    return logging.getLogger(name)
