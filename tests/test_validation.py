import torch
from sacrebleu.metrics import BLEU

from s2s.checkpoint import load_model
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, collate
from s2s.translator import Translator
from s2s.validation import validation_bleu, validation_loss


def test_validation_loss_is_the_mean_per_target_token_whatever_the_batches(trained_project):
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    model.train()  # validation switches dropout off itself
    valid = ParallelData.load(trained_project.split_tensors("valid"))
    total = tokens = 0.0
    with torch.no_grad():
        for i in range(len(valid)):  # one sentence at a time, no padding
            batch = collate(valid, [i])
            total += model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out).sum().item()
            tokens += batch.n_tgt_tokens
    for batch_tokens in (50, 400, 10_000):
        loss = validation_loss(model, valid, batch_tokens, torch.device("cpu"))
        assert abs(loss - total / tokens) < 1e-5
    assert not model.training


def test_validation_bleu_is_sacrebleu_of_greedy_output_against_the_decoded_references(trained_project,
                                                                                    trained_params):
    model, checkpoint = load_model(trained_project.model, torch.device("cpu"))
    vocabs = Vocabs.from_protos(checkpoint["spm"])
    translator = Translator(model, vocabs, LengthLimit.from_eval(trained_params.eval), batch_size=8)
    valid = ParallelData.load(trained_project.split_tensors("valid"))
    hyps = [vocabs.tgt.decode(translator.translate_ids([valid.src(i)]).tokens[0]) for i in range(len(valid))]
    refs = [vocabs.tgt.decode(valid.tgt(i).tolist()) for i in range(len(valid))]
    assert validation_bleu(translator, valid) == BLEU().corpus_score(hyps, [refs]).score
