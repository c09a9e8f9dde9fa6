"""The params reference (``docs/params.md``), generated from the dataclasses of :mod:`s2s.config`.

``s2s info --markdown`` prints it; a test checks that the committed file is current.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import yaml

from s2s.config import CorpusFiles, EnsembleMember, Params

HEADER = """# Params reference

Every key of `params.yaml`, its type, default, allowed values and meaning. Generated from
`src/s2s/config.py` by `s2s info --markdown > docs/params.md`; do not edit by hand. The
defaults are the values of the committed `params.yaml` (the default experiment). Unknown
or mistyped keys are errors; `s2s info` prints a params file validated, defaults filled in.
"""


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"dict[{_type_name(args[0])}, {_type_name(args[1])}]"
    if args and type(None) in args:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return getattr(hint, "__name__", str(hint))


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()  # type: ignore[misc]


def _allowed(meta: typing.Mapping) -> str:
    if meta.get("choices"):
        return " \\| ".join(f"`{c}`" for c in meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        return f"{low} … {high}"
    if low is not None:
        return f"≥ {low}"
    return ""


def _cell(value: Any) -> str:
    """``value`` as YAML writes it inline: `true`, `null`, `""`, `[test_2016_flickr]`."""
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip() + "`"


def _table(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    rows = ["| param | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        meta = field.metadata
        rows.append(f"| `{prefix}{field.name}` | {_type_name(hints[field.name])} | {_cell(_default(field))} "
                    f"| {_allowed(meta)} | {meta.get('doc', '').replace('|', '/')} |")
    return rows


def params_reference() -> str:
    """The Markdown reference of every param, one table per section."""
    lines = [HEADER]
    for section in dataclasses.fields(Params):
        cls = typing.get_type_hints(Params)[section.name]
        lines += [f"## `{section.name}`", "", (cls.__doc__ or "").strip(), "", *_table(cls, f"{section.name}."), ""]
        if section.name == "data":
            lines += ["Each entry of `data.files` (a custom corpus: split name → files):", "",
                      *_table(CorpusFiles, "data.files.<split>."), ""]
        if section.name == "eval":
            lines += ["Each entry of `eval.ensemble` (a model decoded with `models/model.pt`):", "",
                      *_table(EnsembleMember, "eval.ensemble[i]."), ""]
    return "\n".join(lines)
