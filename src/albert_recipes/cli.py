"""Recipe configuration: typed dataclasses + a YAML file + dotted command-line overrides.

Every recipe declares its settings as (nested) dataclasses. `parse_recipe_args` merges, in this order,
the dataclass defaults, the YAML file given with `--config`, and `section.key=value` overrides, and
checks every key and type on the way, so a typo fails early with a suggestion instead of being ignored.
The merged object is what the recipe prints, logs and saves beside each checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from albert_recipes.errors import InputError

T = TypeVar("T")
_YAML_BOOL_WORDS = {True: ("true", "yes", "on", "y"), False: ("false", "no", "off", "n")}


class ConfigError(InputError):
    """A recipe configuration problem the user can fix (bad key, bad value, missing file)."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; convert the few lossless cases (int -> float, str -> Path)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool):  # YAML 1.1 reads no/off/yes/on as booleans: give back the word that was meant
            spelled = [c for c in allowed if isinstance(c, str) and c.lower() in _YAML_BOOL_WORDS[value]]
            value = spelled[0] if len(spelled) == 1 else value
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{key}: expected a path, got {value!r}")
    return value


def _type_name(tp: Any) -> str:
    """How a setting's type reads in messages and `--help`: 'an integer', "one of ['lamb', 'adamw']", ..."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(tp))
    if origin is typing.Literal:
        return f"one of {list(typing.get_args(tp))}"
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string",
             Path: "a path"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _choices(tp: Any) -> tuple | None:
    """The allowed values of a Literal setting (also inside `Literal[...] | None`), else None."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if (found := _choices(arg)) is not None:
                return found + ((None,) if type(None) in typing.get_args(tp) else ())
    return None


def format_value(value: Any) -> str:
    """A value as it is written in YAML and in `key=value` overrides: 0.001, true, null, '', [a, b], a/b/c."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    types_by_name = _field_types(type(obj))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in types_by_name:
            close = difflib.get_close_matches(name, list(types_by_name), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            allowed = ", ".join(sorted(types_by_name))
            raise ConfigError(f"unknown config key '{key}'{hint} (allowed here: {allowed})")
        tp = types_by_name[name]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a section of keys, got {value!r}")
            _apply(getattr(obj, name), value, prefix=f"{key}.")
        else:
            setattr(obj, name, _coerce(value, tp, key))


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def parse_override(token: str) -> dict[str, Any]:
    """`train.lr=3e-4` -> {'train': {'lr': 0.0003}}; the value is read as YAML so numbers and lists just work."""
    token = token[2:] if token.startswith("--") else token
    if "=" not in token:
        raise ConfigError(f"override '{token}' must look like section.key=value")
    key, raw = token.split("=", 1)
    if not key:
        raise ConfigError(f"override '{token}' has no key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return _nest(key, value)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def build_config(cls: type[T], yaml_path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults <- YAML file <- overrides, all validated against the dataclass `cls`."""
    cfg = cls()
    if yaml_path is not None:
        _apply(cfg, load_yaml(yaml_path))
    for token in overrides or []:
        _apply(cfg, parse_override(token))
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


def flat_hparams(cfg: Any, prefix: str = "") -> dict[str, int | float | str | bool]:
    """The config as `section.key` scalars, what TensorBoard's hparams accept (lists, None, mappings as text)."""
    flat: dict[str, int | float | str | bool] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            flat.update(flat_hparams(value, f"{prefix}{f.name}."))
        else:
            flat[f"{prefix}{f.name}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def config_to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def _settings(cls: type, prefix: str = "") -> list[tuple[str, Any, Any, str]]:
    """(dotted key, type, default, help) of every setting of a recipe's config class, in declaration order."""
    out = []
    instance = cls()
    for f in dataclasses.fields(cls):
        tp = _field_types(cls)[f.name]
        if _is_dataclass_type(tp):
            out.extend(_settings(tp, prefix=f"{prefix}{f.name}."))
        else:
            out.append((f"{prefix}{f.name}", tp, getattr(instance, f.name), f.metadata.get("help", "")))
    return out


def _describe(cls: type) -> list[str]:
    lines = []
    for key, tp, default, helptext in _settings(cls):
        choices = _choices(tp)
        shown = [c if isinstance(c, str) else format_value(c) for c in choices or ()]
        allowed = f" (one of: {', '.join(shown)})" if choices else ""
        lines.append(f"  {key} = {format_value(default)}\n      {helptext}{allowed}".rstrip())
    return lines


def example_override(cls: type) -> str:
    """An override that this recipe really has, for `--help`: a sectioned integer setting if there is one
    (`train.` first), else a flipped switch, else any sectioned setting."""
    settings = [s for s in _settings(cls) if "." in s[0]] or _settings(cls)
    settings.sort(key=lambda s: not s[0].startswith("train."))  # stable: the training section's first
    for key, tp, default, _ in settings:
        if tp is int:
            return f"{key}={format_value(default)}"
    for key, tp, default, _ in settings:
        if tp is bool:
            return f"{key}={format_value(not default)}"
    key, _, default, _ = settings[0]
    return f"{key}={format_value(default)}"


def parse_recipe_args(cls: type[T], argv: list[str] | None = None, description: str = "") -> T:
    """Command-line entry point shared by the recipes: exits with status 2 and a one-line reason on bad input."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (override any with key=value, e.g. " + example_override(cls) + "; values are read as "
        "YAML):\n" + "\n".join(_describe(cls)),
    )
    recipe = Path(parser.prog).stem
    configs = Path("recipes") / "configs" / recipe
    parser.add_argument("--config", help=f"YAML file with settings (see {configs}/)")
    parser.add_argument("overrides", nargs="*", help=f"dotted overrides such as {example_override(cls)}")
    args, unknown = parser.parse_known_args(argv)
    try:
        return build_config(cls, args.config, list(args.overrides) + unknown)
    except ConfigError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    raise AssertionError("unreachable")


def run_cli(main: typing.Callable[[T], Any], cls: type[T], description: str) -> None:
    """Parse, run, and turn our own validation errors (`InputError`) into one line and exit status 2.

    Any other exception keeps its traceback: a `ValueError` from torch or datasets is a bug or an environment
    problem, and shortening it would hide where it came from.
    """
    cfg = parse_recipe_args(cls, sys.argv[1:], description)
    try:
        main(cfg)
    except InputError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
