import torch

from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.train import load_model
from s2s.translator import Translator
from test_train import run


def test_lines_keep_order_and_empty_lines_stay_empty(tiny_project, tiny_params):
    run(tiny_project, tiny_params, tiny_project.model)
    model, _ = load_model(tiny_project.model, torch.device("cpu"))
    lines = ["ein hund läuft", "", "zwei  katzen\tsitzen auf dem tisch", "Ж", "ein hund läuft"]
    translator = Translator(model, Vocabs.load(tiny_project.spm), LengthLimit(1.5, 5), batch_size=2)
    out = translator.translate_lines(lines)
    assert len(out) == 5 and out[1] == ""
    assert out[0] == out[4]  # same input, same output, wherever it sits in the batches
    single = Translator(model, Vocabs.load(tiny_project.spm), LengthLimit(1.5, 5), batch_size=1)
    assert single.translate_lines(lines) == out
