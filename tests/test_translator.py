import dataclasses
import logging

import numpy as np
import pytest
import torch

from s2s.search import LengthLimit, beam_search, greedy
from s2s.subword import EOS_ID, Vocabs
from s2s.tensors import pad
from s2s.checkpoint import load_model
from s2s.translator import Translator, chunks, moses_nbest


def test_lines_keep_order_and_empty_lines_stay_empty(trained_project):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    lines = ["ein hund läuft", "", "zwei  katzen\tsitzen auf dem tisch", "Ж", "ein hund läuft"]
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), batch_size=2)
    out = translator.translate_lines(lines)
    assert len(out) == 5 and out[1] == ""
    assert out[0] == out[4]  # same input, same output, wherever it sits in the batches
    single = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), batch_size=1)
    assert single.translate_lines(lines) == out


def test_long_lines_are_truncated_with_a_warning(trained_project, caplog):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), max_src_len=6)
    out = translator.translate_lines(["ein hund", "ein hund " * 40])
    # the long line is translated as its first 6 pieces; the short one as it is
    pieces = dataclasses.replace(translator, max_src_len=1000).encode_lines(["ein hund " * 40])[0]
    assert len(pieces) > 6
    assert out[1] == translator.detokenize(translator.translate_ids([pieces[:6]]))[0]
    assert out[0] == translator.translate_lines(["ein hund"])[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("line 2:") and "truncated to 6" in warnings[0]


def test_nbest_lines_are_ranked(trained_project):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), beam=4)
    nbest = translator.nbest_lines(["ein hund läuft", ""], 3)
    assert len(nbest[0]) == 3 and nbest[1] == [("", 0.0)]
    scores = [score for _, score in nbest[0]]
    assert scores == sorted(scores, reverse=True)
    assert nbest[0][0][0] == translator.translate_lines(["ein hund läuft"])[0]


def test_decoding_with_blocked_weights_gives_what_the_plain_weights_give(trained_project):
    """The translator decodes with copies of the output and attention weights in oneDNN's blocked
    layout; the searches called directly use the weights as they are: the same tokens, and beam
    scores within 1e-5."""
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    vocabs, limit = Vocabs.load(trained_project.spm), LengthLimit(1.5, 5)
    translator = Translator(model, vocabs, limit, batch_size=8)
    ids = translator.encode_lines(["ein hund läuft", "zwei katzen sitzen auf dem tisch", "ein mann", "Ж"])
    src = pad([np.asarray(i) for i in ids], suffix=EOS_ID)       # (4, longest + 1)
    src_lens = torch.tensor([len(i) + 1 for i in ids])
    assert translator.translate_ids(ids).tokens == greedy(model, src, src_lens, limit).tokens
    through = Translator(model, vocabs, limit, batch_size=8, beam=4).nbest_ids(ids, 2)
    direct = beam_search(model, src, src_lens, limit, beam=4, nbest=2)
    for ours, plain in zip(through, direct):
        assert [h.tokens for h in ours] == [h.tokens for h in plain]
        assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(ours, plain))


LINES = ["ein hund läuft", "", "zwei katzen sitzen auf dem tisch", "ein mann", "Ж", "eine frau spielt ball",
         "ein kind", "zwei hunde laufen auf dem gras", "", "rot blau"]


def test_chunks_are_read_lazily():
    taken = []

    def items():
        for i in range(7):
            taken.append(i)
            yield i
    parts = chunks(items(), 3)
    assert next(parts) == [0, 1, 2] and taken == [0, 1, 2]  # nothing of the next chunk read yet
    assert list(parts) == [[3, 4, 5], [6]]
    assert list(chunks([], 3)) == []
    with pytest.raises(ValueError):
        next(chunks([1], 0))


@pytest.mark.parametrize("beam", [1, 3])
def test_a_stream_in_small_chunks_translates_as_the_whole_input(trained_project, beam):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), batch_size=2, beam=beam)
    whole = translator.translate_lines(LINES)
    parts = list(translator.translate_stream(iter(LINES), chunk_lines=3))
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert [text for part in parts for text in part] == whole
    assert [t for part in translator.translate_stream(LINES) for t in part] == whole  # default: one chunk here


def test_a_stream_yields_each_chunk_before_reading_the_next(trained_project):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5))
    taken = []

    def source():
        for line in LINES:
            taken.append(line)
            yield line
    stream = translator.translate_stream(source(), chunk_lines=3)
    assert next(stream) == translator.translate_lines(LINES[:3]) and len(taken) == 3
    assert next(stream) == translator.translate_lines(LINES[3:6]) and len(taken) == 6


def test_nbest_stream_keeps_the_lines_in_order_across_chunks(trained_project):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), beam=3)
    parts = list(translator.nbest_stream(iter(LINES), 2, chunk_lines=4))
    whole = translator.nbest_lines(LINES, 2)
    assert [len(p) for p in parts] == [4, 4, 2]
    flat = [hyps for part in parts for hyps in part]
    assert [[t for t, _ in hyps] for hyps in flat] == [[t for t, _ in hyps] for hyps in whole]
    assert [s for hyps in flat for _, s in hyps] == pytest.approx([s for hyps in whole for _, s in hyps], abs=1e-5)


def test_moses_nbest_numbers_lines_across_chunks():
    chunked = [[[("a", -1.0), ("b", -2.0)]], [[("", 0.0)], [("c", -0.5)]]]
    assert list(moses_nbest(chunked)) == [["0 ||| a ||| -1.0000", "0 ||| b ||| -2.0000"],
                                          ["1 |||  ||| 0.0000", "2 ||| c ||| -0.5000"]]


def test_truncation_warnings_name_the_line_of_the_stream(trained_project, caplog):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    translator = Translator(model, Vocabs.load(trained_project.spm), LengthLimit(1.5, 5), max_src_len=6)
    lines = ["ein hund"] * 4 + ["ein hund " * 40] + ["ein hund"]
    with caplog.at_level(logging.WARNING, logger="s2s.translator"):
        list(translator.translate_stream(lines, chunk_lines=2))
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.levelname == "WARNING"] == ["line 5"]
    assert translator.encode_lines(["ein hund " * 40], first_line=10) and "line 10:" in caplog.records[-1].getMessage()
