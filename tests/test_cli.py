import torch
import yaml
from typer.testing import CliRunner

from s2s.checkpoint import load_model
from s2s.cli import app
from s2s.config import params_from_dict
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.translator import Translator
from conftest import ROOT
from test_train import run

runner = CliRunner()


def test_info_prints_validated_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  hidden: 64\n")
    result = runner.invoke(app, ["info", "--params", str(path)])
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["model"]["hidden"] == 64


def test_info_markdown_is_the_committed_params_reference():
    result = runner.invoke(app, ["info", "--markdown"])
    assert result.exit_code == 0
    committed = (ROOT / "docs" / "params.md").read_text(encoding="utf-8")
    assert result.stdout == committed, "docs/params.md is stale: run `s2s info --markdown > docs/params.md`"
    assert "| `model.hidden` | int | `512` | 8 … 8192 |" in committed


def test_bad_params_exit_1_with_one_message(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  hiden: 64\n")
    result = runner.invoke(app, ["bench", "--params", str(path), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "model.hiden: unknown parameter; did you mean model.hidden?" in result.output
    assert "Traceback" not in result.output


def test_translate_stdin_to_stdout(tiny_project, tiny_params, monkeypatch):
    run(tiny_project, tiny_params, tiny_project.model)
    result = runner.invoke(app, ["translate", "--model", str(tiny_project.model)],
                           input="ein hund läuft\n\nzwei katzen\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3 and result.stdout.splitlines()[1] == ""


def test_translate_rejects_invalid_utf8(tiny_project, tiny_params):
    run(tiny_project, tiny_params, tiny_project.model)
    result = runner.invoke(app, ["translate", "--model", str(tiny_project.model)], input=b"gut\n\xff\n")
    assert result.exit_code == 1 and "stdin:2: invalid UTF-8" in result.output


def test_translate_files_with_beam(tiny_project, tiny_params, tmp_path):
    run(tiny_project, tiny_params, tiny_project.model)
    source = tmp_path / "in.de"
    source.write_text("ein hund\nzwei katzen\n", encoding="utf-8")
    out = {}
    for beam in (1, 3):
        target = tmp_path / f"out{beam}.en"
        result = runner.invoke(app, ["translate", "-m", str(tiny_project.model), "--beam", str(beam),
                                     "-i", str(source), "-o", str(target)])
        assert result.exit_code == 0, result.output
        out[beam] = target.read_text(encoding="utf-8").splitlines()
    # what the library's Translator gives at that beam (the model's own eval.beam is 5)
    model, checkpoint = load_model(tiny_project.model, torch.device("cpu"))
    params = params_from_dict(checkpoint["params"])
    for beam in (1, 3):
        translator = Translator(model, Vocabs.from_protos(checkpoint["spm"]),
                                LengthLimit.from_eval(params.eval),
                                normalization=params.clean.normalization, beam=beam,
                                len_penalty=params.eval.len_penalty)
        assert out[beam] == translator.translate_lines(["ein hund", "zwei katzen"])


def test_translate_nbest_in_moses_format(tiny_project, tiny_params):
    run(tiny_project, tiny_params, tiny_project.model)
    result = runner.invoke(app, ["translate", "-m", str(tiny_project.model), "--beam", "3", "--nbest", "2"],
                           input="ein hund\nzwei katzen\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and [line.split(" ||| ")[0] for line in lines] == ["0", "0", "1", "1"]


def test_translate_names_a_bad_input_or_device_flag(tmp_path):
    result = runner.invoke(app, ["translate", "-i", str(tmp_path / "missing.de")])
    assert result.exit_code == 1 and f"--input {tmp_path / 'missing.de'}: no such file" in result.output
    result = runner.invoke(app, ["translate", "--device", "gpu"], input="ein hund\n")
    assert result.exit_code == 1 and "--device: 'gpu' is not a device; use auto, cpu or cuda" in result.output
    assert "Traceback" not in result.output
