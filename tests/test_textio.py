import json

import pytest

from s2s.textio import CorpusError, decode_lines, read_lines, write_json, write_lines


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
