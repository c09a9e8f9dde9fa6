"""Reading params files (YAML 1.1, as PyYAML reads it) without its surprises.

PyYAML merges a key given twice (the last wins) and reads ``no`` as False,
``010`` as 8 and ``1:30`` as 90. The loader here refuses duplicate keys,
naming both lines, and keeps the source text of every scalar it did not read
as a string, by param path, so that validation (:mod:`s2s.config`) can say what
the user wrote and how to write what they meant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from s2s.errors import ConfigError

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1) that refuses duplicate keys, which PyYAML merges silently (the last
    wins), and notes the source text of every scalar it does not read as a string (``no`` -> False,
    ``010`` -> 8), keyed by the param path, so that errors can quote what the user wrote."""

    def __init__(self, stream: str, root: str = ""):
        super().__init__(stream)
        self.root = root
        self.words: dict[str, str] = {}
        self._surveyed: set[int] = set()

    def construct_document(self, node: yaml.Node) -> Any:
        self._survey(node, self.root)  # before construction: merges (<<) rewrite the nodes in place
        return super().construct_document(node)

    def _survey(self, node: yaml.Node, path: str) -> None:
        if id(node) in self._surveyed:  # an alias: seen where its anchor is
            return
        self._surveyed.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag != _STR_TAG:
                self.words.setdefault(path, node.value)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._survey(item, f"{path}[{i}]")
        elif isinstance(node, yaml.MappingNode):
            self.check_mapping_keys(node, path)

    def check_mapping_keys(self, node: yaml.MappingNode, path: str) -> None:
        """Refuse a key given twice in ``node`` (the mapping at ``path``), naming both lines."""
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *base`: its keys may be overridden here, that is what it is for
                for merged in (value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]):
                    self._survey(merged, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=True)
            child = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if key in lines:
                where = f"lines {lines[key]} and {line}" if lines[key] != line else f"twice on line {line}"
                raise ConfigError(f"{child}: duplicate key ({where}); YAML would silently "
                                  "keep only the last one: remove one, or merge the two")
            lines[key] = line
            self._survey(value_node, child)


def _one_line(err: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong, and where."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def _parse_yaml(text: str, root: str = "") -> tuple[Any, dict[str, str]]:
    """The data of one YAML document and the source text of its non-string scalars (see :class:`_ParamsLoader`)."""
    loader = _ParamsLoader(text, root)
    try:
        return loader.get_single_data(), loader.words
    finally:
        loader.dispose()


def read_params_file(path: Path) -> tuple[Any, dict[str, str]]:
    """The parsed YAML of a params file (``{}`` when empty) and its scalars' source text; a missing, unreadable
    or bad file is a ConfigError."""
    if not path.exists():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass --params")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                          "save it as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or err})") from None
    try:
        raw, words = _parse_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(err)}); fix the syntax") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return (raw if raw is not None else {}), words


def apply_overrides(raw: Any, words: dict[str, str], overrides: list[str]) -> tuple[Any, dict[str, str]]:
    """``raw`` with ``key.path=value`` overrides applied (values parsed as YAML, as `dvc exp run -S` does),
    and the source text of the scalars updated likewise."""
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected key.path=value, e.g. model.hidden=256")
        if not isinstance(raw, dict):
            break  # the file itself is not a mapping: validation says so
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        try:
            node[leaf], value_words = _parse_yaml(value, key)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {override!r}: the value is not valid YAML ({_one_line(err)}); "
                              "quote it") from None
        except ConfigError as err:
            raise ConfigError(f"override {override!r}: {err}") from None
        words = {k: v for k, v in words.items() if k != key and not k.startswith((f"{key}.", f"{key}["))}
        words.update(value_words)
    return raw, words
