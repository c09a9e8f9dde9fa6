import json

import numpy as np
import pytest

from s2s.subword import Vocabs
from s2s.tensorizer import resolve_workers, tensorize_split
from s2s.tensors import ParallelData, arrays_digest, pack
from s2s.textio import CorpusError, read_lines


def split_files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_the_arrays_hold_sentencepiece_ids_of_every_line(tiny_project, tmp_path):
    vocabs = Vocabs.load(tiny_project.spm)
    summary = tensorize_split(tiny_project.clean, "train", vocabs, tmp_path)
    data = ParallelData.load(tmp_path / "train")
    for side, processor, ids, offsets in (("src", vocabs.src, data.src_ids, data.src_offsets),
                                          ("tgt", vocabs.tgt, data.tgt_ids, data.tgt_offsets)):
        expected_ids, expected_offsets = pack(processor.encode(read_lines(tiny_project.clean / f"train.{side}")))
        assert np.array_equal(ids, expected_ids) and np.array_equal(offsets, expected_offsets)
    meta = json.loads((tmp_path / "train" / "meta.json").read_text())
    assert meta["pairs"] == summary.pairs == len(data) and meta["src_tokens"] == len(data.src_ids)
    assert meta["vocab"] == vocabs.fingerprint()
    assert meta["sha256"] == arrays_digest({"src": np.array(data.src_ids), "src_offsets": data.src_offsets,
                                            "tgt": data.tgt_ids, "tgt_offsets": data.tgt_offsets})
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [
        "meta.json", "src.npy", "src_offsets.npy", "tgt.npy", "tgt_offsets.npy"]  # no .raw or .part left


def test_the_bytes_are_the_same_with_one_or_two_workers_and_any_chunk_size(tiny_project, tmp_path):
    vocabs = Vocabs.load(tiny_project.spm)
    tensorize_split(tiny_project.clean, "train", vocabs, tmp_path / "one", workers=1)
    for workers, chunk_lines in ((2, 7), (2, 1000), (1, 13)):
        out = tmp_path / f"w{workers}-{chunk_lines}"
        tensorize_split(tiny_project.clean, "train", vocabs, out, workers=workers, chunk_lines=chunk_lines)
        assert split_files(out / "train") == split_files(tmp_path / "one" / "train"), (workers, chunk_lines)


def test_long_valid_sentences_are_truncated_with_a_warning_naming_the_line(tiny_project, tmp_path, caplog):
    clean = tiny_project.clean
    lines = (clean / "valid.src").read_text().splitlines()
    lines[2] = " ".join(["hund"] * 400)
    (clean / "valid.src").write_text("".join(line + "\n" for line in lines))
    vocabs = Vocabs.load(tiny_project.spm)
    with caplog.at_level("WARNING"):
        summary = tensorize_split(clean, "valid", vocabs, tmp_path / "cut", max_pieces=50, workers=2,
                                  chunk_lines=2)
    data = ParallelData.load(tmp_path / "cut" / "valid")
    assert len(data) == len(lines) and summary.truncated == {"src": 1, "tgt": 0}  # truncated, never dropped
    assert len(data.src(2)) == 50 and max(data.src_lens) == 50
    assert f"{clean / 'valid.src'}:3: " in caplog.text and "truncated to 50 (tensorize.max_pieces)" in caplog.text
    tensorize_split(clean, "valid", vocabs, tmp_path / "whole")
    untouched = ParallelData.load(tmp_path / "whole" / "valid")
    assert len(untouched.src(2)) > 50 and np.array_equal(untouched.src(0), data.src(0))


def test_sides_of_unequal_length_are_an_error_and_leave_no_arrays_behind(tiny_project, tmp_path):
    lines = (tiny_project.clean / "valid.tgt").read_text().splitlines(keepends=True)
    (tiny_project.clean / "valid.tgt").write_text("".join(lines[:-1]))
    with pytest.raises(CorpusError, match="valid.src has .* lines but .*valid.tgt has"):
        tensorize_split(tiny_project.clean, "valid", Vocabs.load(tiny_project.spm), tmp_path, workers=2,
                        chunk_lines=3)
    assert not [p for p in (tmp_path / "valid").iterdir() if p.suffix in (".raw", ".npy", ".part", ".json")]


def test_zero_workers_means_one_per_core():
    assert resolve_workers(0) >= 1 and resolve_workers(3) == 3
