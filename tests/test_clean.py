from pathlib import Path

import pytest

from s2s.clean import CorpusError, clean_corpus, clean_split, normalize, read_lines, read_parallel
from s2s.config import CleanConfig


def test_normalize_unicode_whitespace_and_control_characters():
    assert normalize("Cafe\u0301  au\tlait\u0007 ", "NFC") == "Café au lait"
    assert normalize("ﬁne ½", "NFKC") == "fine 1⁄2"
    assert normalize("ﬁne", "NFC") == "ﬁne"
    assert normalize(" \u00a0 ", "NFC") == ""


def test_train_filters_count_each_reason():
    src = ["ein hund", "", "a " * 100, "kurz", "ein hund", "eins zwei"]
    tgt = ["a dog", "empty source", "long", "this target is far too long", "a dog", "one two"]
    out_src, out_tgt, stats = clean_split(src, tgt, CleanConfig(max_len=80, max_ratio=3.0), is_train=True)
    assert out_src == ["ein hund", "eins zwei"] and out_tgt == ["a dog", "one two"]
    assert stats.dropped == {"empty": 1, "too_long": 1, "too_many_chars": 0, "ratio": 1, "duplicate": 1}
    assert (stats.lines_in, stats.lines_out) == (6, 2)


def test_dedupe_can_be_switched_off():
    _, _, stats = clean_split(["a", "a"], ["b", "b"], CleanConfig(dedupe=False), is_train=True)
    assert stats.lines_out == 2


def test_valid_and_test_are_only_normalized():
    src, tgt, stats = clean_split(["", "x " * 200], ["y", "z"], CleanConfig(), is_train=False)
    assert src == ["", ("x " * 200).strip()] and stats.lines_out == 2 and sum(stats.dropped.values()) == 0


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unequal_line_counts_name_both_files(tmp_path):
    a = write(tmp_path / "train.de", b"eins\nzwei\n")
    b = write(tmp_path / "train.en", b"one\n")
    with pytest.raises(CorpusError, match=r"train\.de has 2 lines but .*train\.en has 1"):
        read_parallel(a, b)


def test_clean_corpus_writes_nothing_when_a_split_is_bad(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "clean"
    raw.mkdir()
    write(raw / "train.de", b"ein hund\n")
    write(raw / "train.en", b"a dog\n")
    write(raw / "valid.de", b"eins\n")
    write(raw / "valid.en", b"one\ntwo\n")
    with pytest.raises(CorpusError):
        clean_corpus(raw, out, ["train", "valid"], "de", "en", CleanConfig())
    assert not out.exists()


def test_clean_corpus_limits_train_pairs(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "clean"
    raw.mkdir()
    for split in ("train", "valid"):
        write(raw / f"{split}.de", b"a\nb\nc\n")
        write(raw / f"{split}.en", b"x\ny\nz\n")
    stats = clean_corpus(raw, out, ["train", "valid"], "de", "en", CleanConfig(), max_train_pairs=2)
    assert read_lines(out / "train.src") == ["a", "b"] and stats["valid"].lines_out == 3
    assert not list(out.glob("*.part"))


def test_a_long_line_without_spaces_is_dropped_by_its_characters():
    wall = "x" * 5000  # one "word": clean.max_len alone would keep it
    src, tgt, stats = clean_split(["ein hund", wall, "zwei"], ["a dog", "a wall", "two"],
                                  CleanConfig(max_chars=1000), is_train=True)
    assert src == ["ein hund", "zwei"] and tgt == ["a dog", "two"]
    assert stats.dropped["too_many_chars"] == 1 and stats.lines_out == 2
    valid, _, _ = clean_split([wall], ["a wall"], CleanConfig(max_chars=1000), is_train=False)
    assert valid == [wall]  # valid and test keep every line (tensorize truncates their pieces)
