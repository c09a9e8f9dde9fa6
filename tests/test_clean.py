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


def test_clean_corpus_in_the_stage_outputs_writes_nothing_when_a_split_is_bad(tmp_path):
    from s2s.atomic import stage_outputs
    raw, out = tmp_path / "raw", tmp_path / "clean"
    raw.mkdir()
    write(raw / "train.de", b"ein hund\n")
    write(raw / "train.en", b"a dog\n")
    write(raw / "valid.de", b"eins\n")
    write(raw / "valid.en", b"one\ntwo\n")
    with pytest.raises(CorpusError, match=r"valid\.de has 1 lines but .*valid\.en has 2"):
        with stage_outputs() as outputs:
            clean_corpus(raw, outputs.directory(out), ["train", "valid"], "de", "en", CleanConfig())
    assert not out.exists() and list(tmp_path.iterdir()) == [raw]


def whole_list_clean(src, tgt, config, is_train):
    """The former clean: whole lists in, a set of the pairs' text for dedupe."""
    from s2s.clean import DROP_REASONS, drop_reason
    out_src, out_tgt, seen, dropped = [], [], set(), {r: 0 for r in DROP_REASONS}
    for s, t in zip(src, tgt):
        s, t = normalize(s, config.normalization), normalize(t, config.normalization)
        if is_train:
            reason = drop_reason(s, t, config)
            if reason is None and config.dedupe:
                reason = "duplicate" if (s, t) in seen else None
                seen.add((s, t))
            if reason is not None:
                dropped[reason] += 1
                continue
        out_src.append(s)
        out_tgt.append(t)
    return out_src, out_tgt, dropped


def test_streaming_clean_gives_the_old_clean_output(tiny_corpus, tmp_path):
    """The streamed output equals that of cleaning the whole lists at once (the former clean_corpus)."""
    raw = Path(tiny_corpus["train"]["src"]).parent
    (raw / "train.de").write_text((raw / "train.de").read_text() * 2 + "  Ein\u00a0Hund\t\n\n", encoding="utf-8")
    (raw / "train.en").write_text((raw / "train.en").read_text() * 2 + "a  dog\nempty\n", encoding="utf-8")
    stats = clean_corpus(raw, tmp_path / "clean", ["train", "valid", "test"], "de", "en", CleanConfig())
    for split in ("train", "valid", "test"):
        src, tgt = read_lines(raw / f"{split}.de"), read_lines(raw / f"{split}.en")
        want_src, want_tgt, want_dropped = whole_list_clean(src, tgt, CleanConfig(), is_train=split == "train")
        assert read_lines(tmp_path / "clean" / f"{split}.src") == want_src
        assert read_lines(tmp_path / "clean" / f"{split}.tgt") == want_tgt
        assert stats[split].dropped == want_dropped and stats[split].lines_in == len(src)
    assert stats["train"].dropped["duplicate"] >= 300 and stats["train"].dropped["empty"] == 1


def test_dedupe_keeps_a_digest_per_pair_not_the_text():
    from s2s.clean import pair_digest
    assert pair_digest("a b", "c") != pair_digest("a", "b c")  # the two sides are kept apart
    assert isinstance(pair_digest("ein hund", "a dog"), int) and pair_digest("x", "y") < 2 ** 64


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


def set_based_clean(src, tgt, config):
    """The former dedupe of train: a Python set of every kept pair's digest, one pair at a time."""
    from s2s.clean import DROP_REASONS, drop_reason, pair_digest
    out, seen, dropped = [], set(), {r: 0 for r in DROP_REASONS}
    for s, t in zip(src, tgt):
        s, t = normalize(s, config.normalization), normalize(t, config.normalization)
        reason = drop_reason(s, t, config)
        if reason is None and config.dedupe:
            digest = pair_digest(s, t)
            reason = "duplicate" if digest in seen else None
            seen.add(digest)
        if reason is not None:
            dropped[reason] += 1
            continue
        out.append((s, t))
    return [s for s, _ in out], [t for _, t in out], dropped


def repetitive_corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` raw pairs drawn from few distinct ones (and spelling variants that normalise alike), so
    most are repeats, some of a pair far behind, some of the pair just before; a few are filtered."""
    import random
    rng = random.Random(seed)
    words = ["ein", "hund", "läuft", "Cafe\u0301", "über", "die", "straße", "x"]
    base = [(" ".join(rng.choices(words, k=rng.randint(1, 4))), " ".join(rng.choices(words, k=rng.randint(1, 4))))
            for _ in range(40)] + [("", "empty"), ("a " * 90, "too long")]
    src, tgt = [], []
    for _ in range(n):
        s, t = rng.choice(base) if rng.random() < 0.8 or not src else (src[-1], tgt[-1])
        if rng.random() < 0.3:  # the same pair after normalisation: a duplicate too
            s, t = f"  {s}\t", t.replace(" ", "\u00a0 ")
        src.append(s)
        tgt.append(t)
    return src, tgt


def test_first_occurrences_across_chunks_equal_a_set_in_order():
    import numpy as np
    from s2s.clean import FirstOccurrences, first_occurrences
    rng = np.random.default_rng(0)
    values = np.array([0, 1, 2 ** 63, 2 ** 64 - 1, 12345], dtype=np.uint64)  # the whole unsigned range
    digests = values[rng.integers(0, len(values), size=500)]
    seen, want = set(), []
    for d in digests.tolist():
        want.append(d not in seen)
        seen.add(d)
    assert first_occurrences(digests).tolist() == want
    for build_chunk, chunk in ((2, 3), (7, 1), (1 << 20, 64)):  # repeats straddle every boundary
        first = FirstOccurrences(digests.copy(), chunk=build_chunk)
        got = np.concatenate([first.keep(digests[i:i + chunk]) for i in range(0, len(digests), chunk)])
        assert got.tolist() == want
    assert sorted(first.repeated.tolist()) == sorted(values.tolist())  # it keeps the repeated values only
    assert first_occurrences(np.array([5, 3, 5, 3, 9], dtype=np.uint64)).tolist() == [True, True, False, False, True]
    assert first_occurrences(np.empty(0, dtype=np.uint64)).tolist() == []


def test_dedupe_keeps_the_first_occurrence_in_corpus_order(tmp_path):
    src, tgt, stats = clean_split(["b", "a", "b ", "c", "a"], ["2", "1", "2", "3", "1"], CleanConfig(), is_train=True)
    assert (src, tgt) == (["b", "a", "c"], ["2", "1", "3"])
    assert stats.dropped["duplicate"] == 2 and stats.lines_out == 3
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw / "train.de", "b\na\nb\nc\na\n".encode())
    write(raw / "train.en", "2\n1\n2\n3\n1\n".encode())
    clean_corpus(raw, tmp_path / "clean", ["train"], "de", "en", CleanConfig())
    assert read_lines(tmp_path / "clean" / "train.src") == ["b", "a", "c"]


def test_two_pass_dedupe_gives_the_set_based_output_across_chunk_boundaries(tmp_path, monkeypatch):
    import s2s.clean
    src, tgt = repetitive_corpus(3000)
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw / "train.de", "".join(s + "\n" for s in src).encode())
    write(raw / "train.en", "".join(t + "\n" for t in tgt).encode())
    config = CleanConfig(max_len=80)
    want_src, want_tgt, want_dropped = set_based_clean(src, tgt, config)
    assert want_dropped["duplicate"] > 2000 and want_dropped["empty"] and want_dropped["too_long"]
    for chunk in (1, 7, 64, 1 << 16):  # pairs per chunk of digests: repeats straddle the boundaries
        monkeypatch.setattr(s2s.clean, "_CHUNK", chunk)
        out = tmp_path / f"clean{chunk}"
        stats = clean_corpus(raw, out, ["train"], "de", "en", config)
        assert read_lines(out / "train.src") == want_src and read_lines(out / "train.tgt") == want_tgt
        assert stats["train"].dropped == want_dropped
        assert (stats["train"].lines_in, stats["train"].lines_out) == (3000, len(want_src))
        assert sorted(p.name for p in out.iterdir()) == ["train.src", "train.tgt"]  # no temporary file left
    got_src, got_tgt, stats = clean_split(src, tgt, config, is_train=True)
    assert (got_src, got_tgt, stats.dropped) == (want_src, want_tgt, want_dropped)


def test_dedupe_leaves_no_temporary_file_when_it_fails(tmp_path, monkeypatch):
    import s2s.clean
    raw, out = tmp_path / "raw", tmp_path / "clean"
    raw.mkdir()
    write(raw / "train.de", b"a\nb\na\n")
    write(raw / "train.en", b"x\ny\n")
    with pytest.raises(CorpusError, match="has 3 lines but"):  # in the first pass
        clean_corpus(raw, out, ["train"], "de", "en", CleanConfig())
    assert list(out.iterdir()) == []
    write(raw / "train.en", b"x\ny\nx\n")

    def broken(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(s2s.clean, "_copy_first_occurrences", broken)  # in the second pass
    with pytest.raises(OSError, match="No space left"):
        clean_corpus(raw, out, ["train"], "de", "en", CleanConfig())
    assert list(out.iterdir()) == []
