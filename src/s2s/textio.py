"""Text files in and out: UTF-8 lines (invalid bytes name the line) and sorted JSON, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from s2s.atomic import write_text
from s2s.errors import S2SError


class CorpusError(S2SError):
    """A text file that cannot be read as a corpus: missing, invalid UTF-8, unequal or empty sides."""


def decode_lines(stream: Iterable[bytes], name: str) -> list[str]:
    """Lines of a binary stream as text, without newlines; invalid UTF-8 names the line."""
    lines = []
    for number, raw in enumerate(stream, start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as err:
            raise CorpusError(f"{name}:{number}: invalid UTF-8 ({err.reason} at byte "
                              f"{err.start}); re-encode it as UTF-8") from None
    return lines


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 file, without newlines."""
    if not Path(path).is_file():
        raise CorpusError(f"{path}: file not found; run the stage that writes it first")
    with open(path, "rb") as handle:
        return decode_lines(handle, str(path))


def write_lines(path: Path, lines: list[str]) -> None:
    """Write lines through a .part file renamed when complete."""
    write_text(path, "".join(line + "\n" for line in lines))


def write_json(path: Path, payload: dict) -> None:
    """Write sorted, indented JSON through a .part file renamed when complete."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
