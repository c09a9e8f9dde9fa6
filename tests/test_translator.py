import dataclasses

import numpy as np
import torch

from s2s.search import LengthLimit, beam_search, greedy
from s2s.subword import EOS_ID, Vocabs
from s2s.tensors import pad
from s2s.checkpoint import load_model
from s2s.translator import Translator


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
