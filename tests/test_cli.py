import pytest
import torch
import yaml
from typer.testing import CliRunner

from s2s.checkpoint import load_model
from s2s.cli import app
from s2s.config import params_from_dict
from s2s.params_reference import params_reference
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.translator import Translator

runner = CliRunner()


def test_info_prints_validated_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  hidden: 64\n")
    result = runner.invoke(app, ["info", "--params", str(path)])
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["model"]["hidden"] == 64


def test_info_markdown_prints_the_params_reference():
    result = runner.invoke(app, ["info", "--markdown"])
    assert result.exit_code == 0 and result.stdout == params_reference()


def test_bad_params_exit_1_with_one_message(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  hiden: 64\n")
    result = runner.invoke(app, ["bench", "--params", str(path), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "model.hiden: unknown parameter; did you mean model.hidden?" in result.output
    assert "Traceback" not in result.output


def translator_of(model_path, **settings) -> Translator:
    """The library's Translator with the settings the model file carries, as `s2s translate` builds it."""
    model, checkpoint = load_model(model_path, torch.device("cpu"))
    params = params_from_dict(checkpoint["params"])
    settings = {"beam": params.eval.beam, "len_penalty": params.eval.len_penalty, **settings}
    return Translator(model, Vocabs.from_protos(checkpoint["spm"]), LengthLimit.from_eval(params.eval),
                      normalization=params.clean.normalization, **settings)


def test_translate_stdin_to_stdout(trained_project):
    lines = ["ein hund läuft", "", "zwei katzen"]
    result = runner.invoke(app, ["translate", "--model", str(trained_project.model)],
                           input="".join(line + "\n" for line in lines))
    assert result.exit_code == 0, result.output
    # one line out per line in, an empty line stays empty, and the text is the model's (at its eval.beam)
    assert result.stdout.splitlines() == translator_of(trained_project.model).translate_lines(lines)
    assert result.stdout.splitlines()[1] == "" and result.stdout.splitlines()[0] != ""


def test_translate_rejects_invalid_utf8(trained_project):
    result = runner.invoke(app, ["translate", "--model", str(trained_project.model)], input=b"gut\n\xff\n")
    assert result.exit_code == 1 and "stdin:2: invalid UTF-8" in result.output


def test_translate_files_with_beam(trained_project, tmp_path):
    source = tmp_path / "in.de"
    source.write_text("ein hund\nzwei katzen\n", encoding="utf-8")
    out = {}
    for beam in (1, 3):
        target = tmp_path / f"out{beam}.en"
        result = runner.invoke(app, ["translate", "-m", str(trained_project.model), "--beam", str(beam),
                                     "-i", str(source), "-o", str(target)])
        assert result.exit_code == 0, result.output
        out[beam] = target.read_text(encoding="utf-8").splitlines()
    # what the library's Translator gives at that beam (the model's own eval.beam is 5)
    for beam in (1, 3):
        assert out[beam] == translator_of(trained_project.model, beam=beam).translate_lines(["ein hund", "zwei katzen"])


def test_translate_nbest_in_moses_format(trained_project):
    result = runner.invoke(app, ["translate", "-m", str(trained_project.model), "--beam", "3", "--nbest", "2"],
                           input="ein hund\nzwei katzen\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and [line.split(" ||| ")[0] for line in lines] == ["0", "0", "1", "1"]
    # `number ||| text ||| score`: the beam's two best of each line, best first, with their scores
    nbest = translator_of(trained_project.model, beam=3).nbest_lines(["ein hund", "zwei katzen"], 2)
    fields = [line.split(" ||| ") for line in lines]
    assert [f[1] for f in fields] == [text for hyps in nbest for text, _ in hyps]
    assert [float(f[2]) for f in fields] == pytest.approx([score for hyps in nbest for _, score in hyps], abs=1e-4)


def test_translate_names_a_bad_input_or_device_flag(tmp_path):
    result = runner.invoke(app, ["translate", "-i", str(tmp_path / "missing.de")])
    assert result.exit_code == 1 and f"--input {tmp_path / 'missing.de'}: no such file" in result.output
    result = runner.invoke(app, ["translate", "--device", "gpu"], input="ein hund\n")
    assert result.exit_code == 1 and "--device: 'gpu' is not a device; use auto, cpu or cuda" in result.output
    assert "Traceback" not in result.output
