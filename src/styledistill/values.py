"""The one check of settings values: each dataclass field's type, and finite numbers.

Config files (a student's ``config.json``), ``--model-option``/``--teacher-option``
values (JSON) and Python arguments all come through here, so a setting of the wrong
type is one line naming where it came from and the key (``config.json: d_model must
be an integer, got 'abc'``) instead of a comparison failing deep inside, and NaN or
infinity never becomes a setting. Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["check_fields", "first_non_finite", "is_finite_number"]


def is_finite_number(value: Any) -> bool:
    """True for an int or a finite float (bools are not numbers here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def first_non_finite(value: Any) -> float | None:
    """The first NaN or infinite float in ``value`` (nested lists, tuples, dicts), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = first_non_finite(item)
            if found is not None:
                return found
    return None


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(kind))
    if kind is type(None):
        return "null"
    if origin in (list, tuple):
        args = typing.get_args(kind)
        return (
            f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
            if args
            else "a list"
        )
    if origin is dict or kind is dict:
        return "an object"
    return _NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _fits(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return is_finite_number(value)
    if kind is str:
        return isinstance(value, str)
    if origin in (list, tuple) or kind in (list, tuple):
        args = typing.get_args(kind)
        return isinstance(value, (list, tuple)) and (
            not args or all(_fits(item, args[0]) for item in value)
        )
    if origin is dict or kind is dict:
        return isinstance(value, dict) and first_non_finite(value) is None
    return True  # a type this check does not know: left to the owner's own validation


def check_fields(cls: type, values: Mapping[str, Any], source: str) -> None:
    """Raise :class:`ConfigError` unless each of ``values`` fits its field of dataclass ``cls``.

    ``source`` names where the values came from (a file, a flag). Unknown keys are the
    caller's business; floats must be finite wherever a number is expected.
    """
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            continue
        kind = hints.get(key, Any)
        if not _fits(value, kind):
            wanted = _describe(kind)
            if first_non_finite(value) is not None:
                wanted += " (NaN and infinity are not accepted)"
            raise ConfigError(f"{source}: {key} must be {wanted}, got {value!r}")
