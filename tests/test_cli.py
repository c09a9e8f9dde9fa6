import dataclasses
import logging
import queue
import subprocess
import sys
import threading

import pytest
import torch
import yaml
from typer.testing import CliRunner

from s2s.checkpoint import load_checkpoint, load_model
from s2s.cli import app
from s2s.config import params_from_dict
from s2s.model.ensemble import Ensemble
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


@pytest.mark.parametrize("beam", [1, 3])
def test_translate_with_several_models_decodes_their_ensemble(trained_project, tmp_path, beam):
    lines = ["ein hund läuft", "zwei katzen", "ein mann auf der straße"]
    source = tmp_path / "in.de"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    checkpoint = load_checkpoint(trained_project.model, "cpu")
    torch.manual_seed(0)  # a second model: the first's weights, perturbed
    checkpoint["model"] = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                           for k, v in checkpoint["model"].items()}
    other = tmp_path / "other.pt"
    torch.save(checkpoint, other)

    def translate(*models) -> list[str]:
        result = runner.invoke(app, ["translate", *(a for m in models for a in ("-m", str(m))), "--beam", str(beam),
                                     "-i", str(source)])
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    model = trained_project.model
    assert translate(model, model) == translate(model)  # a model with itself: the model's translations
    single = translator_of(model, beam=beam)
    ensemble = dataclasses.replace(single, model=Ensemble([single.model, load_model(other, torch.device("cpu"))[0]]))
    assert translate(model, other) == ensemble.translate_lines(lines)
    assert translate(model, other) != translate(model)  # the second model is decoded, not ignored


def test_translate_refuses_models_of_other_vocabularies(trained_project, tmp_path):
    checkpoint = load_checkpoint(trained_project.model, "cpu")
    checkpoint["spm"] = {name: proto + b"\x00" for name, proto in checkpoint["spm"].items()}
    torch.save(checkpoint, tmp_path / "other.pt")
    result = runner.invoke(app, ["translate", "-m", str(trained_project.model), "-m", str(tmp_path / "other.pt")],
                           input="ein hund\n")
    assert result.exit_code == 1 and "its SentencePiece models differ" in result.output


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


STREAM = ["ein hund läuft", "", "zwei katzen sitzen auf dem tisch", "ein mann", "Ж", "eine frau spielt ball",
          "ein kind", "zwei hunde laufen auf dem gras"]


@pytest.mark.parametrize("beam", ["1", "3"])
def test_translate_in_small_chunks_gives_what_the_whole_input_gives(trained_project, beam):
    text = "".join(line + "\n" for line in STREAM)
    args = ["translate", "-m", str(trained_project.model), "--beam", beam, "--batch-size", "2"]
    chunked = runner.invoke(app, [*args, "--chunk-lines", "3"], input=text)
    whole = runner.invoke(app, args, input=text)
    assert chunked.exit_code == 0 and whole.exit_code == 0, chunked.output + whole.output
    assert chunked.stdout == whole.stdout
    assert chunked.stdout.splitlines() == translator_of(trained_project.model, beam=int(beam)).translate_lines(STREAM)


def test_translate_nbest_numbers_lines_across_chunks(trained_project):
    args = ["translate", "-m", str(trained_project.model), "--beam", "3", "--nbest", "2"]
    text = "".join(line + "\n" for line in STREAM[:5])
    chunked = runner.invoke(app, [*args, "--chunk-lines", "2"], input=text)
    assert chunked.exit_code == 0, chunked.output
    assert [line.split(" ||| ")[0] for line in chunked.stdout.splitlines()] == \
        ["0", "0", "1", "2", "2", "3", "3", "4", "4"]  # line 1 is empty: one empty hypothesis
    assert chunked.stdout == runner.invoke(app, args, input=text).stdout


def read_lines_within(stream, count: int, seconds: float) -> list[str]:
    """``count`` lines of ``stream``, or fail when they do not all come within ``seconds``."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(stream.readline()) for _ in range(count)], daemon=True).start()
    return [lines.get(timeout=seconds) for _ in range(count)]


def test_translate_writes_each_chunk_before_the_input_ends(trained_project):
    expected = translator_of(trained_project.model, beam=1).translate_lines(STREAM[:4])
    command = [sys.executable, "-m", "s2s.cli", "translate", "-m", str(trained_project.model), "--beam", "1",
               "--chunk-lines", "2", "--device", "cpu"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          encoding="utf-8") as proc:
        try:
            for first in (0, 2):  # stdin stays open: the output of each chunk comes all the same
                proc.stdin.write("".join(line + "\n" for line in STREAM[first:first + 2]))
                proc.stdin.flush()
                assert read_lines_within(proc.stdout, 2, 120) == [t + "\n" for t in expected[first:first + 2]]
            proc.stdin.close()
            assert proc.stdout.read() == "" and proc.wait(timeout=60) == 0
        finally:
            proc.kill()


def test_translate_output_keeps_the_old_file_on_an_error_mid_input(trained_project, tmp_path):
    source, target = tmp_path / "in.de", tmp_path / "out.en"
    source.write_bytes("".join(line + "\n" for line in STREAM).encode() + b"kaputt \xff\n")
    target.write_text("old\n", encoding="utf-8")
    result = runner.invoke(app, ["translate", "-m", str(trained_project.model), "--beam", "1",
                                 "--chunk-lines", "3", "-i", str(source), "-o", str(target)])
    assert result.exit_code == 1 and f"{source}:9: invalid UTF-8" in result.output
    assert target.read_text(encoding="utf-8") == "old\n"  # two chunks were translated, none written over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.de", "out.en"]  # and no out.en.part
    source.write_bytes("".join(line + "\n" for line in STREAM).encode())
    result = runner.invoke(app, ["translate", "-m", str(trained_project.model), "--beam", "1",
                                 "--chunk-lines", "3", "-i", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").splitlines() == \
        translator_of(trained_project.model, beam=1).translate_lines(STREAM)


def test_max_src_len_defaults_to_the_models_max_pieces(trained_project, tmp_path, caplog):
    checkpoint = torch.load(trained_project.model, weights_only=True)
    checkpoint["params"]["tensorize"]["max_pieces"] = 6
    model = tmp_path / "model.pt"
    torch.save(checkpoint, model)
    text = "ein hund\n" * 3 + "ein hund " * 40 + "\n"
    with caplog.at_level(logging.WARNING, logger="s2s.translator"):
        result = runner.invoke(app, ["translate", "-m", str(model), "--beam", "1", "--chunk-lines", "2"], input=text)
        assert result.exit_code == 0, result.output
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and warnings[0].startswith("line 4:") and "truncated to 6" in warnings[0]
        caplog.clear()
        result = runner.invoke(app, ["translate", "-m", str(model), "--beam", "1", "--max-src-len", "1000"],
                               input=text)
        assert result.exit_code == 0 and not [r for r in caplog.records if r.levelname == "WARNING"]
