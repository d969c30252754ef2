"""The from-scratch CNN recipes: a registry of equal shape, one module per recipe.

``train_scratch.recipe`` in params.yaml names a module of this package, whose settings are
the section ``recipes.<name>`` (dvc.yaml declares only the chosen recipe's section, so
editing another recipe reruns nothing). Each recipe module defines:

- ``Config``: its params section (a :class:`catsdogs.core.params.Section` with types, ranges,
  defaults and an ``augmentation`` field), rendered into params.yaml by :mod:`catsdogs.params_file`;
- ``check(config, image_size)``: ``ValueError`` for an image size the network cannot take;
- ``build(config, image_size, steps_per_epoch)``: the compiled Keras model (optimizer, schedule, loss);
- ``stopping(config)``: its :class:`Stopping` rule.

Adding a recipe is one module here and, generated from it, one section of params.yaml.
Every model ends in one float32 sigmoid unit, P(dog), the contract of every classifier here.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pydantic import ValidationError

from catsdogs.core.param_errors import describe_errors


@dataclass(frozen=True)
class Stopping:
    """When training ends: ``epochs`` at most, early stopping on val_loss after ``patience`` epochs without a
    better one (watched from ``start_from_epoch``), keeping the best epoch's weights when asked."""

    epochs: int
    patience: int
    start_from_epoch: int
    restore_best_weights: bool


@dataclass(frozen=True)
class Recipe:
    """A recipe by name, with its validated config and its module's functions."""

    name: str
    config: object
    module: ModuleType

    def check(self, image_size: int) -> None:
        self.module.check(self.config, image_size)

    def build(self, image_size: int, steps_per_epoch: int):
        return self.module.build(self.config, image_size, steps_per_epoch)

    def stopping(self) -> Stopping:
        return self.module.stopping(self.config)

    @property
    def augmentation(self):
        return self.config.augmentation


def recipe_names() -> list[str]:
    """The recipes this package holds (its modules), sorted."""
    return sorted(module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not module.name.startswith("_"))


def recipe_module(name: str) -> ModuleType:
    """The module of recipe ``name``; ``ValueError`` naming the recipes there are otherwise."""
    names = recipe_names()
    if name not in names:
        raise ValueError(f"train_scratch.recipe is {name!r}: no such recipe (there are: {', '.join(names)})")
    return importlib.import_module(f"{__name__}.{name}")


def load_recipe(name: str, sections: dict[str, dict]) -> Recipe:
    """Recipe ``name`` with its section of params.yaml's ``recipes`` validated (an absent section: the
    recipe's defaults, as for any section); ``ValueError`` naming ``recipes.<name>.<key>`` for each bad key."""
    module = recipe_module(name)
    try:
        config = module.Config.model_validate(sections.get(name, {}))
    except ValidationError as error:
        lines = describe_errors(error.errors(), module.Config)
        raise ValueError("invalid params:\n  " + "\n  ".join(f"recipes.{name}.{line}" for line in lines)) from None
    return Recipe(name, config, module)


def default_configs() -> dict[str, object]:
    """Every recipe's default config, by name: what params.yaml's ``recipes`` section holds as shipped."""
    return {name: recipe_module(name).Config() for name in recipe_names()}
