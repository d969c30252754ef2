"""``python -m catsdogs.stages <stage>``: how dvc.yaml runs a stage.

Quiets TensorFlow before any stage module imports it (:mod:`catsdogs.core.quiet`), then
runs the stage's ``main`` through :func:`catsdogs.core.runner.run_stage`: one log line and
exit code 1 on bad input, 130 on Ctrl-C, what killed runs left near any stage's outputs removed first.

``python -m catsdogs.stages --sweep`` runs no stage and only removes what killed runs left
(:func:`catsdogs.core.runner.run_sweep`): for a ``dvc repro`` in which DVC restores every stage
from its run cache or finds it unchanged, so no stage starts to do it. A flag, not a name,
so it can never be taken for a stage.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from catsdogs.core.quiet import quiet_tensorflow
from catsdogs.core.runner import run_stage, run_sweep

SWEEP = "--sweep"


def stage_names() -> list[str]:
    """The stage modules beside this file: one per dvc.yaml stage, named as the stage."""
    return sorted(module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not module.name.startswith("_"))


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    names = stage_names()
    if arguments == [SWEEP]:
        run_sweep()
        return
    if len(arguments) != 1 or arguments[0] not in names:
        sys.exit(f"usage: python -m catsdogs.stages {{{','.join(names)}}}\n"
                 f"       python -m catsdogs.stages {SWEEP}   (remove what killed runs left; runs no stage)")
    name = arguments[0]
    quiet_tensorflow()
    run_stage(name, lambda: importlib.import_module(f"catsdogs.stages.{name}").main())


if __name__ == "__main__":
    main()
