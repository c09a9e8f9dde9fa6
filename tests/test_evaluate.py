import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image
from sacrebleu.metrics import BLEU, CHRF, TER

from s2s.checkpoint import load_model
from s2s.errors import S2SError
from s2s.evaluate import evaluate_set, plot_attention, score
from s2s.model import Seq2Seq
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.textio import read_lines
from s2s.translator import Translator


def test_scores_and_signatures():
    refs = ["A dog runs on the grass .", "Two cats sit on a red table ."]
    perfect = score(refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["ter"] == pytest.approx(0.0)
    assert "tok:13a" in perfect["signature"]["bleu"] and "case:mixed" in perfect["signature"]["bleu"]
    assert "case:lc" in perfect["signature"]["bleu_lc"]
    lower = score([r.lower() for r in refs], refs)
    assert lower["bleu"] < 100.0 and lower["bleu_lc"] == pytest.approx(100.0)


def test_misaligned_outputs_are_an_error():
    with pytest.raises(S2SError, match="line-aligned"):
        score(["one"], ["one", "two"])


# evaluate_set and plot_attention, on the session's trained tiny model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def translator_for(project, params, **settings) -> Translator:
    model, _ = load_model(project.model, torch.device("cpu"))
    return Translator(model, Vocabs.load(project.spm), LengthLimit.from_eval(params.eval),
                      normalization=params.clean.normalization, **settings)


@pytest.mark.parametrize("beam", [1, 3])
def test_evaluate_set_writes_aligned_hypotheses_and_scores_them_with_sacrebleu(trained_project, trained_params,
                                                                                tmp_path, beam):
    translator = translator_for(trained_project, trained_params, batch_size=4, beam=beam)
    data = ParallelData.load(trained_project.split_tensors("test"))
    # each sentence translated alone: what line i of the file must hold, whatever the batches
    alone = [dataclasses.replace(translator, batch_size=1).translate_ids([data.src(i)]) for i in range(len(data))]
    expected = [translator.detokenize(h)[0] for h in alone]
    assert len(set(expected)) > 10  # the model tells the sentences apart, so a shifted line would show
    # the tiny model scores BLEU 0 on the real references; with every other one its own output (every
    # fourth capitalised), the scores are neither 0 nor 100, change when a line moves, and depend on case
    raw = read_lines(trained_project.raw_corpus("custom") / "test.en")
    references = [raw[i] if i % 2 == 0 else expected[i].capitalize() if i % 4 == 1 else expected[i]
                  for i in range(len(raw))]
    hyp_path = tmp_path / "outputs" / "test.hyp"  # a directory that does not exist yet
    scores = evaluate_set(translator, data, references, hyp_path)

    text = hyp_path.read_text(encoding="utf-8")
    hyps = text.splitlines()
    assert text.endswith("\n") and len(hyps) == len(data) == 30
    assert hyps == expected
    assert scores.sentences == 30 and scores.tgt_tokens == sum(len(h.tokens[0]) + 1 for h in alone)
    # the scores are sacreBLEU's of the written file against the references
    assert scores.bleu == BLEU().corpus_score(hyps, [references]).score
    assert scores.bleu_lc == BLEU(lowercase=True).corpus_score(hyps, [references]).score
    assert scores.chrf == CHRF().corpus_score(hyps, [references]).score
    assert scores.ter == TER().corpus_score(hyps, [references]).score
    assert 0 < scores.bleu < scores.bleu_lc < 100 and 0 < scores.chrf < 100 and 0 < scores.ter < 100
    assert scores.bleu > BLEU().corpus_score(hyps[1:] + hyps[:1], [references]).score
    assert scores.quality() == {"bleu": round(scores.bleu, 2), "bleu_lc": round(scores.bleu_lc, 2),
                                "chrf": round(scores.chrf, 2), "ter": round(scores.ter, 2),
                                "signature": scores.signature}
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in scores.signature["bleu"]
    assert not list(hyp_path.parent.glob("*.part"))


def test_evaluate_set_refuses_references_of_another_length(trained_project, trained_params, tmp_path):
    translator = translator_for(trained_project, trained_params)
    data = ParallelData.load(trained_project.split_tensors("test"))
    references = read_lines(trained_project.raw_corpus("custom") / "test.en")
    (tmp_path / "test.hyp").write_text("the previous outputs\n", encoding="utf-8")
    with pytest.raises(S2SError, match="30 hypotheses for 29 references.*line-aligned"):
        evaluate_set(translator, data, references[:-1], tmp_path / "test.hyp")
    assert (tmp_path / "test.hyp").read_text(encoding="utf-8") == "the previous outputs\n"


def test_plot_attention_writes_one_png_per_sentence(trained_project, trained_params, tmp_path):
    translator = translator_for(trained_project, trained_params, beam=5)  # plots are of greedy decoding
    valid = ParallelData.load(trained_project.split_tensors("valid"))
    out_dir = tmp_path / "plots" / "attention"
    written = plot_attention(translator, valid, [0, 3, 12], out_dir)
    assert written == [out_dir / "valid_0000.png", out_dir / "valid_0003.png", out_dir / "valid_0012.png"]
    assert sorted(out_dir.iterdir()) == written  # nothing else, no .part files
    widths = {}
    for number, path in zip((0, 3, 12), written):
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        with Image.open(path) as image:
            widths[len(valid.src(number))] = image.size[0]
            image.verify()  # the whole file decodes
    # a longer source sentence makes a wider heatmap (source pieces along the x axis)
    assert len(widths) > 1 and [widths[n] for n in sorted(widths)] == sorted(widths.values())


def test_a_model_without_attention_gets_no_plots(trained_project, trained_params, tmp_path):
    vocabs = Vocabs.load(trained_project.spm)
    config = dataclasses.replace(trained_params.model, attention="none")
    torch.manual_seed(0)
    model = Seq2Seq(config, vocabs.src.get_piece_size(), vocabs.tgt.get_piece_size()).eval()
    translator = Translator(model, vocabs, LengthLimit.from_eval(trained_params.eval))
    out_dir = tmp_path / "attention"
    assert plot_attention(translator, ParallelData.load(trained_project.split_tensors("valid")), [0, 1], out_dir) == []
    assert list(out_dir.glob("*")) == []


def test_a_failing_plot_leaves_the_previous_one_whole_and_no_part_file(trained_project, trained_params, tmp_path,
                                                                     monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    translator = translator_for(trained_project, trained_params)
    valid = ParallelData.load(trained_project.split_tensors("valid"))
    out_dir = tmp_path / "attention"
    plot_attention(translator, valid, [0, 1], out_dir)
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    save = Figure.savefig
    saved = []

    def save_then_fail_on_the_second(self, fname, **kwargs):
        saved.append(fname)
        if len(saved) == 2:  # half a file, then the disk is full
            Path(fname).write_bytes(PNG_SIGNATURE + b"half")
            raise OSError("No space left on device")
        return save(self, fname, **kwargs)

    monkeypatch.setattr(Figure, "savefig", save_then_fail_on_the_second)
    open_figures = set(plt.get_fignums())
    with pytest.raises(OSError, match="No space left"):
        plot_attention(translator, valid, [0, 1], out_dir)
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before  # valid_0001.png is the old one, whole
    assert set(plt.get_fignums()) == open_figures  # the failed figure is closed too
