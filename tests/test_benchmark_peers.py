"""The peer benchmark's parts that run without Joey NMT: the mapping of weights between s2s and Joey NMT,
the provenance of result files, and bleu_runs.py's statistics (benchmarks/peers/joeynmt/)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from s2s.config import ModelConfig
from s2s.model import Seq2Seq
from s2s.tensors import ParallelData, collate, pack

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "joeynmt"
RECORDED_JOEY = PEERS / "results" / "result-1000-seed1234-buckets4-uniform-d6ab0d3.json"


def load(name: str):
    """A module of the benchmark folder, by file (the folder is no package)."""
    spec = importlib.util.spec_from_file_location(f"peer_{name}", PEERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


weights = load("weights")
bleu_runs = load("bleu_runs")
VOCAB = 13


def peer_model(emb: int = 8, hidden: int = 16, vocab: int = VOCAB, seed: int = 0) -> Seq2Seq:
    """s2s's model of the peer architecture (``weights.PEER_MODEL``), at the given sizes."""
    torch.manual_seed(seed)
    model = Seq2Seq(ModelConfig(**{**weights.PEER_MODEL, "emb": emb, "hidden": hidden}), vocab, vocab)
    with torch.no_grad():  # the uniform scheme's output bias is 0: give it values a lost or unswapped row shows
        model.output.bias.copy_(torch.arange(vocab, dtype=torch.float32) + 1)
    return model


# ---------------------------------------------------------------- the weight mapping


def test_s2s_to_joey_and_back_is_exact_but_for_the_output_bias():
    model = peer_model()
    state = model.state_dict()
    joey = weights.joey_state_from_s2s(model)
    back = weights.s2s_state_from_joey(joey["state_dict"], model)
    assert set(back) == set(state)
    for name, tensor in state.items():
        if name == "output.bias":  # Joey's output layer has none: it comes back zero
            assert torch.equal(back[name], torch.zeros(VOCAB))
        else:
            assert back[name].shape == tensor.shape and torch.equal(back[name], tensor), name
    assert torch.equal(weights.swap_pad_unk(joey["output_bias"]), state["output.bias"])
    model.load_state_dict(back)  # strict: every name and shape fits


def test_joey_names_and_shapes_are_those_of_joeys_own_model():
    """At the benchmark's sizes, s2s's weights in Joey's terms have exactly the names and shapes that
    Joey NMT 2.3.0 reported for its model (recorded by joey_side.py in a result file)."""
    recorded = json.loads(RECORDED_JOEY.read_text())["joeynmt"]["param_shapes"]
    model = peer_model(emb=256, hidden=512, vocab=8000)
    joey = weights.joey_state_from_s2s(model)
    assert {name: list(t.shape) for name, t in joey["state_dict"].items()} == recorded
    assert sum(math.prod(s) for s in recorded.values()) + 8000 == model.num_parameters()  # s2s's output bias


def test_vocabulary_rows_swap_pad_and_unk_and_nothing_else():
    model = peer_model()
    state = model.state_dict()
    joey = weights.joey_state_from_s2s(model)["state_dict"]
    for joey_name in weights.VOCAB_ROWS:
        ours, theirs = state[weights.JOEY_TO_S2S[joey_name]], joey[joey_name]
        assert torch.equal(theirs[0], ours[1]) and torch.equal(theirs[1], ours[0])  # Joey: unk 0, pad 1
        assert torch.equal(theirs[2:], ours[2:])
        assert not torch.equal(theirs, ours)
    for joey_name, tensor in joey.items():
        if joey_name not in weights.VOCAB_ROWS:
            assert torch.equal(tensor, state[weights.JOEY_TO_S2S.get(joey_name, joey_name)]), joey_name
    bias = weights.joey_state_from_s2s(model)["output_bias"]
    assert bias[:3].tolist() == [2.0, 1.0, 3.0]


def test_joey_to_s2s_reorders_rows_and_zeroes_the_output_bias():
    model = peer_model()
    joey = {name: torch.randn_like(t) for name, t in weights.joey_state_from_s2s(model)["state_dict"].items()}
    state = weights.s2s_state_from_joey(joey, model)
    embed = joey["trg_embed.lut.weight"]
    assert torch.equal(state["decoder.embed.weight"], torch.cat([embed[1:2], embed[0:1], embed[2:]]))
    assert torch.equal(state["encoder.rnn.weight_hh_l0_reverse"], joey["encoder.rnn.weight_hh_l0_reverse"])
    assert torch.equal(state["output.bias"], torch.zeros(VOCAB))


def test_a_parameter_without_counterpart_stops_the_run():
    model = peer_model()
    joey = weights.joey_state_from_s2s(model)["state_dict"]
    del joey["decoder.bridge_layer.bias"]
    with pytest.raises(SystemExit, match="decoder.bridge.hidden.bias"):
        weights.s2s_state_from_joey(joey, model)
    joey = weights.joey_state_from_s2s(model)["state_dict"]
    joey["decoder.coverage.weight"] = torch.zeros(1)
    with pytest.raises(SystemExit, match="decoder.coverage.weight"):
        weights.s2s_state_from_joey(joey, model)


def test_function_gap_compares_each_pair_with_its_own_reference():
    """The probe's reference log-probabilities, computed one pair at a time, match the padded batch's
    (gap ~0); a change in one token of one pair is the gap."""
    model = peer_model()
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(4, VOCAB, n).tolist(), rng.integers(4, VOCAB, m).tolist())
             for n, m in ((3, 5), (7, 2), (1, 1), (5, 6))]
    model.eval()
    refs = []
    with torch.no_grad():
        for src, tgt in pairs:
            (src_ids, src_offsets), (tgt_ids, tgt_offsets) = pack([src]), pack([tgt])
            data = ParallelData({"src": src_ids, "src_offsets": src_offsets, "tgt": tgt_ids,
                                 "tgt_offsets": tgt_offsets})
            batch = collate(data, np.arange(1))
            refs.append((-model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out))[0].tolist())
    probe = {"pairs": pairs, "log_probs": refs}
    assert weights.function_gap(model, probe) < 1e-5
    assert model.training  # left as it was found by run.py's use: training mode
    refs[1][2] -= 0.25
    assert weights.function_gap(model, probe) == pytest.approx(0.25, abs=1e-5)


# ---------------------------------------------------------------- provenance


def test_every_result_file_carries_provenance():
    files = sorted((PEERS / "results").glob("result-*.json"))
    assert len(files) >= 39
    for path in files:
        provenance = json.loads(path.read_text())["provenance"]
        assert {"commit", "dirty", "command", "matmul_flops_per_s", "recovered"} <= set(provenance), path.name
        if provenance["recovered"]:
            assert provenance["dirty"] is None and provenance["command"] is None  # not known, not invented
            assert len(provenance["added_in"]) == 40
            assert provenance["commit"] is None or provenance["commit"][:7] in path.name  # named in the file name
        else:
            assert len(provenance["commit"]) == 40 and isinstance(provenance["dirty"], bool)


def test_provenance_of_a_run(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PEERS))  # report.py imports its sibling environment.py
    report = load("report")
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("a\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(sys, "argv", ["run.py", "--steps", "6", "-S", "train.seed=1"])
    clean = report.Provenance.collect(1.5e11, repo)
    assert (clean.commit, clean.dirty, clean.matmul_flops_per_s, clean.recovered) == (head, False, 1.5e11, False)
    assert clean.command == [sys.executable, "run.py", "--steps", "6", "-S", "train.seed=1"]
    (repo / "b.txt").write_text("b\n")
    dirty = report.Provenance.collect(1.5e11, repo)
    assert dirty.dirty is True and dirty.dirty_paths == ["?? b.txt"]
    out = tmp_path / "results" / "result.json"
    report.write_result(out, dirty, {"steps": 6})
    written = json.loads(out.read_text())
    assert list(written) == ["provenance", "steps"] and written["provenance"]["commit"] == head
    outside = report.Provenance.collect(1.0, tmp_path / "nowhere")
    assert outside.commit is None and outside.dirty is None


# ---------------------------------------------------------------- bleu_runs.py

CONFIG = "name: peer\nmodel_dir: /x/work/joey_model # scratch\nrandom_seed: {seed}\nlearning_rate: 0.001\n"
ENTROPY = 0.5


def record(created: str, seed: int, s2s: tuple | None = None, joey: tuple | None = None, steps: int = 1000,
           buckets: int = 4, init: str = "uniform", config: str = CONFIG) -> dict:
    """A result file as run.py writes it, reduced to what bleu_runs.py reads; ``s2s`` and ``joey`` are
    (greedy BLEU, beam BLEU, loss of the last 10 updates)."""
    def side(figures):
        return None if figures is None else {"bleu": {"greedy": figures[0], "beam": figures[1]},
                                             "train": {"mean_loss_last10": figures[2]}}
    return {"created": created, "steps": steps, "s2s_init": "s2s", "s2s_batching": "bucketed",
            "s2s_params": {"model": {"init": init}, "train": {"seed": seed, "buckets_per_batch": buckets,
                                                                "accumulate": 1}},
            "joey_config": config.format(seed=seed), "joey_target_entropy": ENTROPY,
            "s2s": side(s2s) or {}, "joeynmt": side(joey)}


def synthetic_results() -> dict[str, dict]:
    return {
        # seed 1: Joey twice (the first reused by a later command), s2s's one model scored twice
        "result-a.json": record("2026-01-01 00:00:01", 1, s2s=(32.0, 34.0, 3.1), joey=(33.0, 34.0, 2.6)),
        "result-b.json": record("2026-01-01 00:00:02", 1, s2s=(33.5, 35.0, 3.1), joey=(33.0, 34.0, 2.6)),
        "result-c.json": record("2026-01-01 00:00:03", 1, joey=(34.0, 35.0, 2.7)),
        # seed 2 on both sides; seed 3 s2s alone
        "result-d.json": record("2026-01-01 00:00:04", 2, s2s=(34.0, 36.0, 3.0), joey=(35.0, 36.0, 2.5)),
        "result-e.json": record("2026-01-01 00:00:05", 3, s2s=(33.0, 34.0, 2.9)),
        # not of the setting: other updates, other chunks per batch, other init, another Joey config
        "result-f.json": record("2026-01-01 00:00:06", 1, s2s=(10.0, 10.0, 5.0), joey=(10.0, 10.0, 5.0), steps=300),
        "result-g.json": record("2026-01-01 00:00:07", 2, s2s=(20.0, 20.0, 3.3), buckets=1),
        "result-h.json": record("2026-01-01 00:00:08", 2, s2s=(21.0, 21.0, 3.4), init="pytorch"),
        "result-i.json": record("2026-01-01 00:00:00", 2, joey=(22.0, 22.0, 2.4),
                                config=CONFIG.replace("0.001", "0.002")),
    }


SETTING = bleu_runs.Setting(steps=1000, s2s_init="uniform", s2s_batching="bucketed", buckets_per_batch=4,
                            accumulate=1)


def test_runs_of_one_setting_each_counted_once():
    runs = bleu_runs.runs_of_setting(synthetic_results(), SETTING)
    assert [(r.system, r.seed, r.greedy, r.beam, r.file) for r in runs] == [
        ("joeynmt", 1, 33.0, 34.0, "result-a.json"),  # the reused run counts once, from its first file
        ("s2s", 1, 33.5, 35.0, "result-b.json"),  # one s2s model, scored by its newest file
        ("joeynmt", 1, 34.0, 35.0, "result-c.json"),
        ("joeynmt", 2, 35.0, 36.0, "result-d.json"),
        ("s2s", 2, 34.0, 36.0, "result-d.json"),
        ("s2s", 3, 33.0, 34.0, "result-e.json")]
    assert runs[0].loss == pytest.approx(2.6 + ENTROPY)  # Joey's KL plus its target's entropy


def test_statistics_computed_by_hand():
    summary = bleu_runs.summarize(bleu_runs.runs_of_setting(synthetic_results(), SETTING))
    assert [m.seed for m in summary.seeds] == [1, 2]  # seed 3 has no Joey run
    seed1, seed2 = summary.seeds
    assert seed1.means == pytest.approx({("s2s", "greedy"): 33.5, ("s2s", "beam"): 35.0,
                                         ("joeynmt", "greedy"): 33.5, ("joeynmt", "beam"): 34.5})
    assert seed1.difference == pytest.approx({"greedy": 0.0, "beam": 0.5})
    assert seed2.difference == pytest.approx({"greedy": -1.0, "beam": 0.0})
    assert summary.seed_difference == pytest.approx({"greedy": -0.5, "beam": 0.25})
    # over all runs: s2s greedy 33.5, 34.0, 33.0 (sd 0.5), beam 35, 36, 34 (sd 1); Joey 33, 34, 35 and 34, 35, 36
    third = 1 / math.sqrt(3)
    assert summary.means["s2s", "greedy"] == pytest.approx((33.5, 0.5 * third))
    assert summary.means["s2s", "beam"] == pytest.approx((35.0, third))
    assert summary.means["joeynmt", "greedy"] == pytest.approx((34.0, third))
    assert summary.means["joeynmt", "beam"] == pytest.approx((35.0, third))
    assert summary.difference["greedy"] == pytest.approx((-0.5, math.sqrt(0.25 / 3 + 1 / 3)))
    assert summary.difference["beam"] == pytest.approx((0.0, math.sqrt(2 / 3)))
    text = bleu_runs.report(summary.runs)
    assert "seed 1: s2s 33.50 / 35.00 (1 run), joeynmt 33.50 / 34.50 (2 runs): s2s - Joey +0.00 / +0.50" in text
    assert "over the 2 seeds both ran (each seed's means weighted alike): s2s - Joey -0.50 / +0.25" in text
    assert "s2s - Joey: -0.50 ± 0.65 / +0.00 ± 0.82" in text


def test_a_single_run_has_no_standard_error():
    assert bleu_runs.mean_and_error([33.25]) == (33.25, 0.0)
    assert bleu_runs.mean_and_error([1.0, 2.0, 6.0]) == pytest.approx((3.0, math.sqrt(7) / math.sqrt(3)))


def test_files_are_read_from_disk_and_a_setting_without_runs_stops(tmp_path):
    for name, result in synthetic_results().items():
        (tmp_path / name).write_text(json.dumps(result))
    runs = bleu_runs.runs_of_setting(bleu_runs.load_results(sorted(tmp_path.glob("*.json"))), SETTING)
    assert len(runs) == 6
    with pytest.raises(SystemExit, match="no runs of both systems"):
        bleu_runs.runs_of_setting(synthetic_results(), bleu_runs.Setting(1000, "joey", "bucketed", 4, 1))
    with pytest.raises(SystemExit, match="no result of 7 training updates"):
        bleu_runs.runs_of_setting(synthetic_results(), bleu_runs.Setting(7, "uniform", "bucketed", 4, 1))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit, match="broken.json"):
        bleu_runs.load_results([tmp_path / "broken.json"])


def test_the_recorded_runs_give_the_readmes_headline():
    """The README's BLEU line: s2s - Joey over all runs with s2s's uniform init, 1000 updates."""
    files = sorted((PEERS / "results").glob("result-*.json"))
    summary = bleu_runs.summarize(bleu_runs.runs_of_setting(bleu_runs.load_results(files), SETTING))
    assert len(summary.of("s2s")) == 4 and len(summary.of("joeynmt")) == 11
    assert [round(summary.difference[s][0], 2) for s in ("greedy", "beam")] == [0.08, 0.13]
    assert [round(summary.difference[s][1], 2) for s in ("greedy", "beam")] == [0.20, 0.18]
    assert [round(summary.seed_difference[s], 2) for s in ("greedy", "beam")] == [0.0, 0.07]
