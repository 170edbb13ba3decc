"""Base class and file loader for every wire/config model."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from federation.errors import FederationError

M = TypeVar("M", bound=BaseModel)


class FrozenModel(BaseModel):
    """Immutable, strict about unknown keys: validated once at the edge, then trusted."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelLoadError(FederationError):
    """A config or wire document failed validation; the message names the file and fields."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def describe_validation_error(err: ValidationError) -> list[str]:
    """One line per problem: ``field.path: message``."""
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(document)"
        lines.append(f"{where}: {item['msg']}")
    return lines


def load_model_file(model: type[M], path: Path) -> M:
    """Read a YAML (or JSON) file into ``model``; raise :class:`ModelLoadError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ModelLoadError(str(path), [f"cannot read: {err.strerror}"]) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ModelLoadError(str(path), [f"not valid YAML: {err}"]) from err
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ModelLoadError(str(path), describe_validation_error(err)) from err
