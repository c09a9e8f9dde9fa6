"""Text files in and out: UTF-8 lines (invalid bytes name the line) and sorted JSON, written atomically."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional, TextIO

from s2s.atomic import atomic_path, write_text
from s2s.errors import S2SError


class CorpusError(S2SError):
    """A text file that cannot be read as a corpus: missing, invalid UTF-8, unequal or empty sides."""


def iter_lines(stream: Iterable[bytes], name: str) -> Iterator[str]:
    """Lines of a binary stream as text, without newlines, one at a time as the stream gives them;
    invalid UTF-8 raises :class:`CorpusError` naming the line (after the lines before it are out)."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CorpusError(f"{name}:{number}: invalid UTF-8 ({err.reason} at byte "
                              f"{err.start}); re-encode it as UTF-8") from None
        yield text.rstrip("\r\n")


def decode_lines(stream: Iterable[bytes], name: str) -> list[str]:
    """Lines of a binary stream as text, without newlines; invalid UTF-8 names the line."""
    return list(iter_lines(stream, name))


def stream_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file, without newlines, read as they are asked for.

    A missing file is an error now, not at the first line; the file is closed when the
    lines run out (or the iterator is dropped).
    """
    if not Path(path).is_file():
        raise CorpusError(f"{path}: file not found; run the stage that writes it first")
    return _file_lines(Path(path))


def _file_lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as handle:
        yield from iter_lines(handle, str(path))


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 file, without newlines."""
    return list(stream_lines(path))


def write_lines(path: Path, lines: list[str]) -> None:
    """Write lines through a .part file renamed when complete."""
    write_text(path, "".join(line + "\n" for line in lines))


def write_line_chunks(chunks: Iterable[list[str]], path: Optional[Path] = None,
                      stream: Optional[TextIO] = None) -> None:
    """Write each chunk of lines as it comes, one newline after each line.

    To ``path``: through ``<path>.part``, renamed only when the last chunk is written, so an
    error or an interrupt while ``chunks`` is consumed leaves the previous file and no
    ``.part``. Otherwise to ``stream`` (default: stdout), flushed after every chunk so
    that a reader sees each chunk as soon as it is done.
    """
    if path is None:
        out = stream if stream is not None else sys.stdout
        for chunk in chunks:
            out.write("".join(line + "\n" for line in chunk))
            out.flush()
        return
    with atomic_path(path) as part, open(part, "w", encoding="utf-8", newline="\n") as handle:
        for chunk in chunks:
            handle.write("".join(line + "\n" for line in chunk))


def write_json(path: Path, payload: dict) -> None:
    """Write sorted, indented JSON through a .part file renamed when complete."""
    try:
        text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    except ValueError:  # json would write NaN / Infinity, which no JSON reader (nor dvc metrics) accepts
        raise S2SError(f"{path}: a figure is NaN or infinite, which JSON cannot hold; the file keeps its "
                       "previous content (a diverged run? lower train.lr)") from None
    write_text(path, text + "\n")
