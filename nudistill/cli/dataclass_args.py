"""Argparse options generated from a stage's config dataclass, so each default and help text is written once.

    add_dataclass_arguments(parser, LabelConfig, flags={"no_progress_timeout_s": "--no-progress-timeout"})
    args = parse_args(parser, argv)                 # --config FILE: the file's values become the defaults
    cfg = config_from_args(LabelConfig, args)       # missing required field -> UserError naming its flag

A field ``batch_size: int = 16`` with the attribute docstring ``"Events per teacher call."`` becomes
``--batch-size N`` with ``type=int``, ``default=16`` and that help. ``X | None`` takes X; ``bool`` becomes
``--flag/--no-flag``; ``list[str]`` takes comma-separated names; ``dict`` takes repeatable KEY=VALUE (JSON
values); choices come from ``typing.Literal`` or the class's ``CHOICES`` mapping (field -> allowed values).
Values are range-checked by the dataclass's ``__post_init__``, which names the flag.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from nudistill.errors import UserError

T = TypeVar("T")
MISSING = dataclasses.MISSING


def field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string literal right after it in the class body), bases first."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def field_default(f: dataclasses.Field) -> Any:
    """The field's default (a fresh one from its factory); ``MISSING`` for a required field."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def flag_of(name: str, flags: dict[str, str] | None = None) -> str:
    """``batch_size`` -> ``--batch-size`` (or the flag ``flags`` gives it)."""
    return (flags or {}).get(name) or "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; other annotations unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def names(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    return [n.strip() for n in text.split(",") if n.strip()]


def key_value(text: str) -> tuple[str, Any]:
    """``"width_mult=0.75"`` -> ``("width_mult", 0.75)`` (a JSON value, else the string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


class _KeyValues(argparse.Action):
    """Repeated KEY=VALUE options into one dict (a copy: the field's default is never changed)."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), value[0]: value[1]})


def _option(f: dataclasses.Field, hint: Any, choices: Any, doc: str) -> dict[str, Any]:
    """The ``add_argument`` keywords of one field."""
    default = field_default(f)
    kind = _base_type(hint)
    kw: dict[str, Any] = {"dest": f.name, "default": None if default is MISSING else default}
    if typing.get_origin(kind) is typing.Literal:
        choices, kind = typing.get_args(kind), type(typing.get_args(kind)[0])
    if kind is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is list or kind is list:
        kw.update(type=names, metavar="A,B,...")
    elif typing.get_origin(kind) is dict or kind is dict:
        kw.update(type=key_value, action=_KeyValues, metavar="KEY=VALUE")
        doc += " Repeatable."
    else:
        kw["type"] = {int: whole_number, float: number}.get(kind, str)
        kw["metavar"] = {int: "N", float: "X"}.get(kind, f.name.upper())
    if choices:
        kw["choices"] = tuple(choices)
        kw.pop("metavar", None)  # argparse then shows {a,b,c}
    shown = ("required" if default is MISSING else None if default is None or default == ""
             else f"default {'on' if default else 'off'}" if kind is bool else f"default {_show(default)}")
    kw["help"] = (doc + (f" ({shown})" if shown else "")).replace("%", "%%")
    return kw


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, flags: dict[str, str] | None = None,
                            positional: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                            overrides: dict[str, dict] | None = None) -> argparse.ArgumentParser:
    """Add one option per field of ``cls`` (``dest`` = field name) and ``--config FILE``.

    ``flags`` renames a field's flag, ``positional`` makes fields optional positional arguments (so a
    ``--config`` file can supply them), ``exclude`` leaves fields off, and ``overrides`` updates the
    generated ``add_argument`` keywords of a field (e.g. a stricter ``type``).
    """
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    choices = getattr(cls, "CHOICES", {})
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        kw = _option(f, hints[f.name], choices.get(f.name), docs.get(f.name, f.name.replace("_", " ")))
        kw.update((overrides or {}).get(f.name, {}))
        if f.name in positional:
            kw.pop("dest")
            kw["metavar"] = f.name.upper()
            parser.add_argument(f.name, nargs="?", **kw)
        else:
            parser.add_argument(flag_of(f.name, flags), **kw)
    parser.add_argument("--config", metavar="FILE", help="rerun a saved resolved config (JSON); its values become "
                        "the defaults and flags given here override them")
    parser.set_defaults(_config_cls=cls, _parser=parser,
                        _flags={**(flags or {}), **{name: name.upper() for name in positional}})
    return parser


def read_config_file(path: str | Path, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` from a saved config JSON (other keys, such as derived values, are ignored)."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise UserError(f"--config {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f"--config {path} must hold a JSON object of {cls.__name__} fields")
    doc = doc.get("config", doc) if isinstance(doc.get("config"), dict) else doc  # a report that embeds its config
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    if not known & set(doc):
        raise UserError(f"--config {path} holds none of the fields of {cls.__name__}")
    return {k: v for k, v in doc.items() if k in known}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; with ``--config FILE``, parse again with the file's values as the verb's defaults."""
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if path:
        verb = args._parser
        saved = dict(verb._defaults), {a: a.default for a in verb._actions}
        verb.set_defaults(**read_config_file(path, args._config_cls))
        try:
            args = parser.parse_args(argv)
        finally:  # the file's values were this parse's defaults only
            verb._defaults = saved[0]
            for action, default in saved[1].items():
                action.default = default
    return args


def config_from_args(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """Build ``cls`` from the parsed options (``extra`` wins); a missing required field names its flag."""
    values: dict[str, Any] = {}
    flags = getattr(args, "_flags", {})
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = extra[f.name] if f.name in extra else getattr(args, f.name, None)
        if value is None and field_default(f) is MISSING:
            raise UserError(f"{flag_of(f.name, flags)} is required")
        if value is not None or f.name in extra:
            values[f.name] = value
    return cls(**values)


def say_config(verb: str, cfg: T) -> T:
    """Print the resolved config as one JSON line (what a ``--config`` rerun takes); return ``cfg``."""
    from nudistill.config import config_dict
    from nudistill.log import say

    say(f"{verb} config: {json.dumps(config_dict(cfg), sort_keys=True)}")
    return cfg
