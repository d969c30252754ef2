"""``python -m catsdogs.stages <stage>``: how dvc.yaml runs a stage.

Quiets TensorFlow before any stage module imports it (:mod:`catsdogs.core.quiet`), then
runs the stage's ``main`` through :func:`catsdogs.core.runner.run_stage`: one log line and
exit code 1 on bad input, 130 on Ctrl-C, what a killed run left removed first.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from catsdogs.core.quiet import quiet_tensorflow
from catsdogs.core.runner import run_stage


def stage_names() -> list[str]:
    """The stage modules beside this file: one per dvc.yaml stage, named as the stage."""
    return sorted(module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not module.name.startswith("_"))


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    names = stage_names()
    if len(arguments) != 1 or arguments[0] not in names:
        sys.exit(f"usage: python -m catsdogs.stages {{{','.join(names)}}}")
    name = arguments[0]
    quiet_tensorflow()
    run_stage(name, lambda: importlib.import_module(f"catsdogs.stages.{name}").main())


if __name__ == "__main__":
    main()
