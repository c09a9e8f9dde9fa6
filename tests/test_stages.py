"""The stage scripts: their code deps in dvc.yaml against their real imports, the paths they write,
the check that they run this checkout's code, and the stages end to end, in-process on the tiny
corpus and for real through `dvc repro`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from sacrebleu.metrics import BLEU, CHRF, TER

from conftest import ROOT, STAGE_NAMES, dvc, git, project_digest, stage
from import_closure import code_deps
from s2s.checkpoint import load_model
from s2s.config import EnsembleMember
from s2s.errors import S2SError
from s2s.subword import SubwordError, Vocabs

CODE = ("src/", "stages/")


def undeclared_and_extra(stages: dict) -> dict[str, tuple[set[str], set[str]]]:
    """Per stage of a dvc.yaml ``stages`` mapping: (code it imports but does not list, code it lists
    but does not import); empty when the deps are exactly the import closure."""
    problems = {}
    for name, spec in stages.items():
        declared = {dep for dep in spec["deps"] if dep.startswith(CODE)}
        closure = set(code_deps(name))
        if declared != closure:
            problems[name] = (closure - declared, declared - closure)
    return problems


def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_script_is_a_stage_and_runs_python_on_it():
    scripts = {p.stem for p in (ROOT / "stages").glob("*.py")} - {"common"}
    assert set(dvc_stages()) == scripts == set(STAGE_NAMES)
    for name, spec in dvc_stages().items():
        assert spec["cmd"] == f"python stages/{name}.py"


def test_every_stage_depends_on_exactly_the_code_it_imports():
    """Editing any module a stage imports, directly or not, makes `dvc status` report that stage."""
    problems = undeclared_and_extra(dvc_stages())
    assert not problems, "; ".join(f"stage {name} imports but does not list {sorted(missing)}, lists but does "
                                   f"not import {sorted(extra)}" for name, (missing, extra) in problems.items())
    closure = code_deps("evaluate")
    assert {"stages/common.py", "src/s2s/config.py", "src/s2s/atomic.py", "src/s2s/errors.py",
            "src/s2s/model/decoder.py"} <= set(closure)
    assert "src/s2s/train.py" not in closure  # evaluating a model does not import the training loop


def test_a_dep_missing_from_dvc_yaml_is_caught():
    stages = dvc_stages()
    stages["train"]["deps"] = [dep for dep in stages["train"]["deps"] if dep != "src/s2s/atomic.py"]
    stages["spm"]["deps"].append("src/s2s/train.py")
    assert undeclared_and_extra(stages) == {"train": ({"src/s2s/atomic.py"}, set()),
                                            "spm": (set(), {"src/s2s/train.py"})}


def test_a_stage_refuses_to_run_another_copy_of_s2s(tmp_path):
    """A checkout without its src/ would run the installed s2s (the project's own): it stops instead."""
    (tmp_path / "stages").mkdir()
    for script in ("common.py", "download.py"):
        (tmp_path / "stages" / script).write_text((ROOT / "stages" / script).read_text())
    result = subprocess.run([sys.executable, str(tmp_path / "stages" / "download.py")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"runs the code of {tmp_path.resolve() / 'src' / 's2s'}, but `import s2s` finds" in result.stderr
    assert "from a complete checkout" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_stages_write_their_contract(trained_copy, trained_params):
    layout = trained_copy  # the data stages and train have run
    data = json.loads((layout.metrics / "data.json").read_text())
    assert data["train"]["lines_in"] == 300 and set(data) == {"train", "valid", "test"}
    stage("evaluate").run(trained_params, layout)
    train = json.loads((layout.metrics / "train.json").read_text())
    assert set(train) == {"params", "epochs", "steps", "best_epoch", "best_step", "validations", "best_valid_loss",
                          "best_valid_ppl", "best_valid_bleu", "model_is_average"}
    assert train["epochs"] == 2 and train["best_epoch"] in (1, 2) and train["validations"] == 2
    assert train["best_step"] in (train["steps"] // 2, train["steps"])
    model, checkpoint = load_model(layout.model, torch.device("cpu"))
    assert train["params"] == model.num_parameters() and train["steps"] == checkpoint["step"]
    assert train["best_epoch"] == checkpoint["epoch"] and train["model_is_average"] is False
    assert train["best_valid_ppl"] == pytest.approx(math.exp(train["best_valid_loss"]), abs=1e-3)
    speed = json.loads((layout.metrics / "speed.json").read_text())
    assert speed["device"] == "cpu" and speed["processes"] == 1
    assert set(speed) == {"device", "processes", "train_seconds", "train_tgt_tokens_per_s"}
    scores = json.loads((layout.metrics / "eval.json").read_text())
    assert set(scores) == {"valid", "test"}
    for split, n_lines in (("valid", 40), ("test", 30)):
        assert set(scores[split]) == {"bleu", "bleu_lc", "chrf", "ter", "signature", "bleu_greedy"}
        references = (layout.raw_corpus("custom") / f"{split}.en").read_text(encoding="utf-8").splitlines()
        for name, key in ((f"{split}.hyp", "bleu"), (f"{split}.greedy.hyp", "bleu_greedy")):
            hyps = (layout.outputs / name).read_text(encoding="utf-8").splitlines()
            assert len(hyps) == n_lines
            # the metric is sacreBLEU of the written outputs against the raw references
            assert scores[split][key] == round(BLEU().corpus_score(hyps, [references]).score, 2)
        hyps = (layout.outputs / f"{split}.hyp").read_text(encoding="utf-8").splitlines()
        for key, metric in (("bleu_lc", BLEU(lowercase=True)), ("chrf", CHRF()), ("ter", TER())):
            assert scores[split][key] == round(metric.corpus_score(hyps, [references]).score, 2), key
            assert scores[split]["signature"][key] == str(metric.get_signature())
    decode_speed = json.loads((layout.metrics / "decode_speed.json").read_text())
    assert set(decode_speed["test"]) == {"beam5", "greedy"}
    pngs = sorted(p.name for p in layout.attention_plots.glob("*.png"))
    assert pngs == ["valid_0000.png", "valid_0001.png", "valid_0002.png", "valid_0003.png"]
    assert (layout.train_plots / "plots" / "metrics" / "valid" / "loss.tsv").exists()

    # eval.beam 1: the same metrics keys, so experiments with and without beam search diff key by key
    greedy_only = dataclasses.replace(trained_params, eval=dataclasses.replace(trained_params.eval, beam=1))
    stage("evaluate").run(greedy_only, layout)
    greedy_scores = json.loads((layout.metrics / "eval.json").read_text())
    assert set(greedy_scores["test"]) == set(scores["test"])
    assert greedy_scores["test"]["bleu_greedy"] == scores["test"]["bleu_greedy"] == greedy_scores["test"]["bleu"]
    assert set(json.loads((layout.metrics / "decode_speed.json").read_text())["test"]) == {"greedy"}


def test_evaluate_scores_the_ensemble_that_params_name(trained_copy, trained_params):
    layout = trained_copy
    stage("evaluate").run(trained_params, layout)
    alone = {p.name: p.read_bytes() for p in layout.outputs.glob("*.hyp")}
    scores = json.loads((layout.metrics / "eval.json").read_text())
    copy = layout.root / "models" / "members" / "same.pt"
    copy.parent.mkdir()
    shutil.copy(layout.model, copy)
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    member = EnsembleMember("models/members/same.pt", digest)
    with_member = dataclasses.replace(trained_params, eval=dataclasses.replace(trained_params.eval, ensemble=[member]))
    stage("evaluate").run(with_member, layout)
    # the model with itself decodes as the model: the same outputs and scores, and the metrics name the members
    assert {p.name: p.read_bytes() for p in layout.outputs.glob("*.hyp")} == alone
    ensemble_scores = json.loads((layout.metrics / "eval.json").read_text())
    assert ensemble_scores.pop("ensemble") == ["models/model.pt", "models/members/same.pt"]
    assert ensemble_scores == scores
    checkpoint = torch.load(layout.model, weights_only=True)
    torch.manual_seed(0)  # another member: the model's weights, perturbed, so the ensemble decodes otherwise
    checkpoint["model"] = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                           for k, v in checkpoint["model"].items()}
    other = layout.root / "models" / "members" / "other.pt"
    torch.save(checkpoint, other)
    member = EnsembleMember("models/members/other.pt", hashlib.sha256(other.read_bytes()).hexdigest())
    stage("evaluate").run(dataclasses.replace(trained_params, eval=dataclasses.replace(trained_params.eval,
                                                                                       ensemble=[member])), layout)
    assert {p.name: p.read_bytes() for p in layout.outputs.glob("*.hyp")} != alone  # the member is decoded
    before = project_digest(layout.root)
    for bad, message in ((EnsembleMember("models/members/none.pt", digest), "none.pt: no such file"),
                         (EnsembleMember("models/members/same.pt", "0" * 64), "same.pt: its sha256 is " + digest)):
        params = dataclasses.replace(trained_params, eval=dataclasses.replace(trained_params.eval, ensemble=[bad]))
        with pytest.raises(S2SError, match=message):
            stage("evaluate").run(params, layout)
    assert project_digest(layout.root) == before  # refused before anything was written


def test_a_stage_that_fails_halfway_leaves_its_previous_output_whole(tiny_project, tiny_params):
    layout = tiny_project
    before = {str(p.relative_to(layout.tensors)): p.read_bytes() for p in layout.tensors.rglob("*") if p.is_file()}
    for side in ("src", "tgt"):  # new training text, so new train arrays would differ from the old
        lines = (layout.clean / f"train.{side}").read_text(encoding="utf-8").splitlines(keepends=True)
        (layout.clean / f"train.{side}").write_text("".join(lines[:-1]), encoding="utf-8")
    (layout.clean / "test.src").unlink()  # tensorize would write train and valid, then fail on test
    with pytest.raises(Exception, match="test.src"):
        stage("tensorize").run(tiny_params, layout)
    after = {str(p.relative_to(layout.tensors)): p.read_bytes() for p in layout.tensors.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in layout.tensors.parent.iterdir()) == ["clean", "raw", "spm", "tensors"]


def test_separate_vocabularies_replace_the_joint_model(tiny_project, tiny_params):
    layout = tiny_project
    joint = sorted(p.name for p in layout.spm.iterdir())
    assert joint == ["spm.model", "spm.vocab"]
    too_big = dataclasses.replace(tiny_params, spm=dataclasses.replace(tiny_params.spm, joint=False))
    with pytest.raises(SubwordError, match="spm.vocab_size"):  # one side's vocabulary is too small for 60
        stage("spm").run(too_big, layout)
    assert sorted(p.name for p in layout.spm.iterdir()) == joint
    separate = dataclasses.replace(too_big, spm=dataclasses.replace(too_big.spm, vocab_size=40))
    stage("spm").run(separate, layout)
    assert sorted(p.name for p in layout.spm.iterdir()) == ["src.model", "src.vocab", "tgt.model", "tgt.vocab"]
    stage("tensorize").run(separate, layout)  # reads the separate models, not a stale joint one
    assert not Vocabs.load(layout.spm).joint


def _stale_stages(repo: Path) -> set[str]:
    status = dvc(repo, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    return set(json.loads(status.stdout))


@pytest.mark.slow
def test_dvc_repro_then_edits_and_experiments(dvc_repo):
    result = dvc(dvc_repo, "repro")
    assert result.returncode == 0, result.stdout + result.stderr
    first = json.loads((dvc_repo / "metrics" / "train.json").read_text())
    scores = json.loads((dvc_repo / "metrics" / "eval.json").read_text())
    hyps = (dvc_repo / "outputs" / "test.hyp").read_text(encoding="utf-8").splitlines()
    references = (dvc_repo / "data" / "raw" / "custom" / "test.en").read_text(encoding="utf-8").splitlines()
    assert scores["test"]["bleu"] == round(BLEU().corpus_score(hyps, [references]).score, 2)
    assert _stale_stages(dvc_repo) == set()
    plots = json.loads(dvc(dvc_repo, "plots", "show", "--json").stdout)["data"]
    images = [path for path, items in plots.items() if any(item.get("type") == "image" for item in items)]
    assert sorted(images) == [f"plots/attention/valid_000{i}.png" for i in range(4)]
    assert "plots/train/plots/metrics/valid/loss.tsv" in plots
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "baseline")

    # one comment in a module makes exactly the stages that import it stale, and no other
    for module, importers in (("src/s2s/evaluate.py", {"evaluate"}), ("src/s2s/atomic.py", set(STAGE_NAMES)),
                              ("src/s2s/subword.py", {"spm", "tensorize", "train", "evaluate"})):
        path = dvc_repo / module
        original = path.read_text()
        path.write_text(original + "# an edit\n")
        assert _stale_stages(dvc_repo) == importers, module
        path.write_text(original)
    assert _stale_stages(dvc_repo) == set()

    result = dvc(dvc_repo, "exp", "run", "-S", "model.hidden=16")
    assert result.returncode == 0, result.stdout + result.stderr
    second = json.loads((dvc_repo / "metrics" / "train.json").read_text())
    assert second["params"] < first["params"]
    diff = dvc(dvc_repo, "metrics", "diff", "--json")
    assert "metrics/train.json" in json.loads(diff.stdout)


@pytest.mark.slow
def test_a_typo_in_params_fails_the_stage_with_our_message(dvc_repo):
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["model"]["hiden"] = 64
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    result = dvc(dvc_repo, "repro", "download")
    assert result.returncode != 0
    assert "model.hiden: unknown parameter; did you mean model.hidden?" in result.stdout + result.stderr
    assert not (dvc_repo / "data" / "raw").exists()
