"""The stages end to end: in-process on the tiny corpus, then for real through `dvc repro`;
and dvc.yaml's code deps against what each stage imports."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from s2s import pipeline
from s2s.subword import SubwordError, Vocabs
from conftest import ROOT, dvc, git

PACKAGE = ROOT / "src" / "s2s"
# Modules that cannot change a stage's outputs, so they are no stage's dep: params are tracked
# by value (params.yaml spells out every key), atomic.py decides how files are written, not
# what, and errors.py only names errors.
NOT_DEPS = {"s2s.config", "s2s.atomic", "s2s.errors"}


def _imports(tree: ast.AST) -> dict[str, str]:
    """Local name -> s2s module it comes from, for every s2s import in ``tree``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "s2s":
            for alias in node.names:
                module = f"s2s.{alias.name}" if node.module == "s2s" else node.module
                names[alias.asname or alias.name] = module
    return names


def _module_file(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _code_deps(start: set[str]) -> set[str]:
    """The dvc.yaml paths of ``start``'s modules and everything they import (``src/s2s/model`` whole)."""
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _imports(ast.parse(_module_file(module).read_text())).values()
    return {"src/s2s/model" if m.startswith("s2s.model") else f"src/s2s/{m.split('.')[1]}.py"
            for m in seen - NOT_DEPS}


def test_every_stage_depends_on_the_code_it_runs():
    """Editing a module reruns exactly the stages whose code imports it, under `dvc repro`."""
    tree = ast.parse((PACKAGE / "pipeline.py").read_text())
    imported = _imports(tree)
    local = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(pipeline.STAGES)
    for stage in stages:
        modules, todo, visited = set(), [local[stage]], set()
        while todo:  # the stage's function and the pipeline.py helpers it calls
            node = todo.pop()
            for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
                if name in imported:
                    modules.add(imported[name])
                elif name in local and name not in visited:
                    visited.add(name)
                    todo.append(local[name])
        declared = {dep for dep in stages[stage]["deps"] if dep.startswith("src/")}
        assert declared == _code_deps(modules), stage


def test_stages_write_their_contract(tiny_project, tiny_params):
    layout = tiny_project
    data = json.loads((layout.metrics / "data.json").read_text())
    assert data["train"]["lines_in"] == 300 and set(data) == {"train", "valid", "test"}
    pipeline.train(tiny_params, layout)
    pipeline.evaluate(tiny_params, layout)
    train = json.loads((layout.metrics / "train.json").read_text())
    assert set(train) == {"params", "epochs", "steps", "best_epoch", "best_valid_loss", "best_valid_ppl",
                          "best_valid_bleu", "model_is_average"}
    speed = json.loads((layout.metrics / "speed.json").read_text())
    assert speed["device"] == "cpu" and speed["train_tgt_tokens_per_s"] > 0
    scores = json.loads((layout.metrics / "eval.json").read_text())
    assert set(scores) == {"valid", "test"}
    for split, n_lines in (("valid", 40), ("test", 30)):
        assert set(scores[split]) == {"bleu", "bleu_lc", "chrf", "ter", "signature", "bleu_greedy"}
        for name in (f"{split}.hyp", f"{split}.greedy.hyp"):
            assert len((layout.outputs / name).read_text(encoding="utf-8").splitlines()) == n_lines
    decode_speed = json.loads((layout.metrics / "decode_speed.json").read_text())
    assert set(decode_speed["test"]) == {"beam5", "greedy"}
    pngs = sorted(p.name for p in layout.attention_plots.glob("*.png"))
    assert pngs == ["valid_0000.png", "valid_0001.png", "valid_0002.png", "valid_0003.png"]
    assert (layout.attention_plots / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (layout.train_plots / "plots" / "metrics" / "valid" / "loss.tsv").exists()

    # eval.beam 1: the same metrics keys, so experiments with and without beam search diff key by key
    greedy_only = dataclasses.replace(tiny_params, eval=dataclasses.replace(tiny_params.eval, beam=1))
    pipeline.evaluate(greedy_only, layout)
    greedy_scores = json.loads((layout.metrics / "eval.json").read_text())
    assert set(greedy_scores["test"]) == set(scores["test"])
    assert greedy_scores["test"]["bleu_greedy"] == scores["test"]["bleu_greedy"] == greedy_scores["test"]["bleu"]
    assert set(json.loads((layout.metrics / "decode_speed.json").read_text())["test"]) == {"greedy"}


def test_a_stage_that_fails_halfway_leaves_its_previous_output_whole(tiny_project, tiny_params):
    layout = tiny_project
    before = {p.name: p.read_bytes() for p in layout.tensors.iterdir()}
    for side in ("src", "tgt"):  # new training text, so a new train.pt would differ from the old
        lines = (layout.clean / f"train.{side}").read_text(encoding="utf-8").splitlines(keepends=True)
        (layout.clean / f"train.{side}").write_text("".join(lines[:-1]), encoding="utf-8")
    (layout.clean / "test.src").unlink()  # tensorize would write train and valid, then fail on test
    with pytest.raises(Exception, match="test.src"):
        pipeline.tensorize(tiny_params, layout)
    assert {p.name: p.read_bytes() for p in layout.tensors.iterdir()} == before
    assert sorted(p.name for p in layout.tensors.parent.iterdir()) == ["clean", "raw", "spm", "tensors"]


def test_separate_vocabularies_replace_the_joint_model(tiny_project, tiny_params):
    layout = tiny_project
    joint = sorted(p.name for p in layout.spm.iterdir())
    assert joint == ["spm.model", "spm.vocab"]
    too_big = dataclasses.replace(tiny_params, spm=dataclasses.replace(tiny_params.spm, joint=False))
    with pytest.raises(SubwordError, match="spm.vocab_size"):  # one side's vocabulary is too small for 60
        pipeline.spm(too_big, layout)
    assert sorted(p.name for p in layout.spm.iterdir()) == joint
    separate = dataclasses.replace(too_big, spm=dataclasses.replace(too_big.spm, vocab_size=40))
    pipeline.spm(separate, layout)
    assert sorted(p.name for p in layout.spm.iterdir()) == ["src.model", "src.vocab", "tgt.model", "tgt.vocab"]
    pipeline.tensorize(separate, layout)  # reads the separate models, not a stale joint one
    assert not Vocabs.load(layout.spm).joint


@pytest.mark.slow
def test_dvc_repro_then_an_experiment_changes_the_parameter_count(dvc_repo):
    result = dvc(dvc_repo, "repro")
    assert result.returncode == 0, result.stdout + result.stderr
    first = json.loads((dvc_repo / "metrics" / "train.json").read_text())
    assert json.loads((dvc_repo / "metrics" / "eval.json").read_text())["test"]["bleu"] >= 0
    assert (dvc_repo / "dvc.lock").exists()
    status = dvc(dvc_repo, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout
    plots = json.loads(dvc(dvc_repo, "plots", "show", "--json").stdout)["data"]
    images = [path for path, items in plots.items() if any(item.get("type") == "image" for item in items)]
    assert sorted(images) == [f"plots/attention/valid_000{i}.png" for i in range(4)]
    assert "plots/train/plots/metrics/valid/loss.tsv" in plots
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "baseline")

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
