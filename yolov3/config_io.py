"""Settings as data: a YAML file or a mapping read into a settings dataclass, and back.

``build_dataclass(cls, data, where)`` converts each value to its field's annotated type (``"0.5"`` ->
0.5, ``"off"`` -> False, a YAML list string -> a list) and refuses an unknown key by name, suggesting
the nearest valid one; ``load_yaml`` names the file in every error; ``bad_setting`` is the one message
form of a value out of range. ``yolov3.config`` holds the settings themselves and re-exports these.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from yolov3.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration value that is missing, unknown or does not parse."""


def bad_setting(name: str, value: Any, expected: str, flag: str | None = None) -> typing.NoReturn:
    """The ``ConfigError`` every settings object raises when made with a value out of range:
    ``name (--flag) = value: expected ...``; ``flag``: the command-line option, by default the name's."""
    flag = flag or "--" + name.replace("_", "-")
    raise ConfigError(f"{name} ({flag}) = {value!r}: expected {expected}")


def nearest(key: str, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a misspelt or shortened ``key`` (a
    setting that starts with it, else the most similar spelling), else ``""``."""
    known = list(known)
    match = [k for k in known if k.startswith(key)] or difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key {key!r}{nearest(str(key), names)}; known: {', '.join(names)}"
            )


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML / command-line value to the annotated type, or raise naming ``where``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args or hint is Any:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where) if len(inner) == 1 else value
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint in (int, float, str):
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return hint(value)
        if origin in (list, tuple):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            return origin(coerce(v, args[0] if args else Any, where) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {getattr(hint, '__name__', hint)}") from exc
    return value


def build_dataclass(cls: type[T], data: dict[str, Any], where: str) -> T:
    """``cls(**data)`` with every value converted to its field's type; an unknown key is an error
    naming it, ``where`` and the nearest valid key."""
    check_keys(cls, data, where)
    hints = typing.get_type_hints(cls)
    return cls(**{k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with the file named in every error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain data, for saving the resolved config next to a run."""
    return dataclasses.asdict(obj)
