"""Command-line options generated from a config dataclass (``TrainConfig``).

Each field made with :func:`mobilecnn.train.config.option` becomes one option: its help text,
choices and metavar come from the field's metadata, its value type from the annotation, and
its value is checked by the same rule as the config's ``validate`` (``check_field``), so a bad
value is an argparse error (one line, exit 2). Options not given are absent from the parsed
namespace (``argparse.SUPPRESS``), so a resumed run keeps its saved values.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["add_config_options", "given_config_values"]


def _base_type(annotation: Any) -> tuple[type, bool]:
    """``(int|float|str|bool, optional)`` of a field annotation such as ``float | None``."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0]
    if annotation not in (int, float, str, bool):
        raise TypeError(f"config fields must be int, float, str or bool (optionally | None), "
                        f"got {annotation!r}")
    return annotation, optional


def _parser(name: str, kind: type, check: Callable[[str, Any], None]) -> Callable[[str], Any]:
    noun = {int: "an integer", float: "a number", str: "a text"}[kind]

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        try:
            check(name, value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _option_fields(config_class: type) -> list[dataclasses.Field]:
    return [item for item in dataclasses.fields(config_class)
            if "help" in item.metadata and item.metadata.get("cli", True) is not False]


def add_config_options(parser: argparse.ArgumentParser, config_class: type,
                       check: Callable[[str, Any], None]) -> list[str]:
    """Add one option per field of ``config_class`` (unless its metadata says ``cli=False``).

    Returns the field names that got an option.
    """
    hints = typing.get_type_hints(config_class)
    names: list[str] = []
    for item in _option_fields(config_class):
        meta = item.metadata
        kind, _ = _base_type(hints[item.name])
        flag = meta.get("flag", "--" + item.name.replace("_", "-"))
        default = item.default
        if kind is bool:
            if default is not True:
                parser.add_argument(flag, dest=item.name, action="store_true",
                                    default=argparse.SUPPRESS, help=meta["help"])
            if default is not False:
                parser.add_argument("--no-" + flag[2:], dest=item.name, action="store_false",
                                    default=argparse.SUPPRESS,
                                    help=meta.get("negative_help", f"not {meta['help']}"))
        else:
            choices = meta.get("choices")
            if callable(choices):
                choices = choices()
            shown = default is not None and meta.get("show_default", True)
            text = meta["help"] + (f" (default {default})" if shown else "")
            parser.add_argument(flag, dest=item.name, type=_parser(item.name, kind, check),
                                choices=choices, metavar=meta.get("metavar"),
                                default=argparse.SUPPRESS, help=text)
        names.append(item.name)
    return names


def given_config_values(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The config values given on the command line (``{field: value}``)."""
    return {item.name: getattr(args, item.name) for item in _option_fields(config_class)
            if hasattr(args, item.name)}
