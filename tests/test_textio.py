import json

import pytest

from s2s.textio import (CorpusError, decode_lines, iter_lines, read_lines, stream_lines, write_json,
                       write_line_chunks, write_lines)


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "x.de"
    path.write_bytes(b"gut\nschlecht \xff\n")
    with pytest.raises(CorpusError, match=r"x\.de:2: invalid UTF-8 \(invalid start byte at byte 9\); re-encode"):
        read_lines(path)


def test_lines_round_trip_without_their_newlines(tmp_path):
    lines = ["ein Hund", "", "zwei Katzen \u00e4", "crlf"]
    write_lines(tmp_path / "out" / "a.txt", lines)
    assert (tmp_path / "out" / "a.txt").read_bytes() == "ein Hund\n\nzwei Katzen \u00e4\ncrlf\n".encode()
    assert read_lines(tmp_path / "out" / "a.txt") == lines
    assert decode_lines([b"windows\r\n", b"last"], "stdin") == ["windows", "last"]


def test_a_missing_file_says_which_stage_to_run(tmp_path):
    with pytest.raises(CorpusError, match=r"none\.txt: file not found; run the stage that writes it first"):
        read_lines(tmp_path / "none.txt")


def test_json_is_sorted_indented_and_replaces_the_file_whole(tmp_path):
    path = tmp_path / "metrics" / "m.json"
    write_json(path, {"b": 1, "a": {"d": 2.5, "c": "x"}})
    assert path.read_text() == '{\n  "a": {\n    "c": "x",\n    "d": 2.5\n  },\n  "b": 1\n}\n'
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})  # not serialisable: the old file stays
    assert json.loads(path.read_text()) == {"a": {"c": "x", "d": 2.5}, "b": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.json"]


def test_iter_lines_yields_each_line_as_the_stream_gives_it():
    taken = []

    def stream():
        for raw in (b"eins\n", b"zwei\r\n", b"drei \xff\n", b"vier\n"):
            taken.append(raw)
            yield raw
    lines = iter_lines(stream(), "stdin")
    assert next(lines) == "eins" and len(taken) == 1  # nothing read ahead
    assert next(lines) == "zwei"
    # the same error decode_lines gives, once the lines before it are out
    with pytest.raises(CorpusError, match=r"^stdin:3: invalid UTF-8 \(invalid start byte at byte 5\); re-encode"):
        next(lines)
    with pytest.raises(CorpusError, match=r"^stdin:3: invalid UTF-8"):
        decode_lines([b"eins\n", b"zwei\n", b"drei \xff\n"], "stdin")


def test_stream_lines_checks_the_file_at_once_and_reads_it_lazily(tmp_path):
    with pytest.raises(CorpusError, match=r"none\.txt: file not found"):
        stream_lines(tmp_path / "none.txt")  # an error before the first line is asked for
    path = tmp_path / "x.de"
    path.write_bytes(b"gut\n\nschlecht \xff\n")
    lines = stream_lines(path)
    assert [next(lines), next(lines)] == ["gut", ""]
    with pytest.raises(CorpusError, match=r"x\.de:3: invalid UTF-8"):
        next(lines)


class Recorder:
    """A text stream that records what was written before each flush."""

    def __init__(self):
        self.pending, self.flushed = "", []

    def write(self, text):
        self.pending += text

    def flush(self):
        self.flushed.append(self.pending)
        self.pending = ""


def test_line_chunks_go_to_the_stream_each_flushed_as_it_comes():
    out = Recorder()
    seen = []

    def chunks():
        for chunk in (["a", ""], ["b"]):
            seen.append(list(out.flushed))
            yield chunk
    write_line_chunks(chunks(), stream=out)
    assert out.flushed == ["a\n\n", "b\n"] and out.pending == ""
    assert seen == [[], ["a\n\n"]]  # the first chunk was out before the second was made


def test_line_chunks_replace_a_file_only_when_all_are_written(tmp_path):
    path = tmp_path / "out" / "a.en"
    write_line_chunks(iter([["a", "b"], ["c"]]), path)
    assert path.read_text(encoding="utf-8") == "a\nb\nc\n"

    def failing():
        yield ["new"]
        raise CorpusError("in.de:9: invalid UTF-8")
    with pytest.raises(CorpusError):
        write_line_chunks(failing(), path)
    assert path.read_text(encoding="utf-8") == "a\nb\nc\n"  # the previous file, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.en"]  # and no .part

    def interrupted():
        yield ["new"]
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_line_chunks(interrupted(), path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.en"]
    assert path.read_text(encoding="utf-8") == "a\nb\nc\n"
