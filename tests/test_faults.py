"""The fault-and-bad-input suite: what a user meets, run as the user runs it.

Each case runs a stage script (``python stages/<name>.py``) or the ``s2s``
command in a subprocess, on a copy of a finished tiny project, and asserts the
exit code, the one ``error:`` line without a traceback, and that every previous
output is intact. Faults that cannot be provoked from outside on any machine
(a full disk, a read-only file system, a loss that turns NaN) are made by a
patched writer or loss, in-process, through the same error boundary the scripts
use (:func:`s2s.errors.report_faults`). ``docs/reliability.md`` tabulates them.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, stage
from s2s.config import Params, params_from_dict, params_to_dict
from s2s.errors import report_faults
from s2s.layout import Layout
from s2s.project_lock import project_lock
from s2s.tensors import ParallelData

IGNORED = (".s2s.lock", "__pycache__")


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (code links and lock files aside), by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part in IGNORED for part in p.parts) and "src" not in p.relative_to(root).parts}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, trained_project: Layout, trained_params: Params) -> Layout:
    """A project after the whole pipeline (evaluate too), with its stage scripts, code and params.yaml."""
    root = tmp_path_factory.mktemp("finished") / "project"
    shutil.copytree(trained_project.root, root)
    layout = Layout(root)
    stage("evaluate").run(trained_params, layout)
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "src").symlink_to(ROOT / "src", target_is_directory=True)  # the scripts run this checkout's s2s
    (root / "params.yaml").write_text(yaml.safe_dump(params_to_dict(trained_params), sort_keys=False))
    return layout


@pytest.fixture
def project(finished: Layout, tmp_path: Path) -> Layout:
    """This case's own copy of the finished project."""
    shutil.copytree(finished.root, tmp_path / "project", symlinks=True)
    return Layout(tmp_path / "project")


def run_stage(layout: Layout, name: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(layout.root / "stages" / f"{name}.py")], cwd=layout.root,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "S2S_CACHE": str(layout.root / "cache"), **env})


def s2s(*args: str, cwd: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2s.cli", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def error_line(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    """The run's one ``error:`` line, after checking the exit code and that no traceback was printed."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


def edit_params(layout: Layout, text_edit=None, **sections) -> None:
    """Change params.yaml: replace keys of sections, or edit its text."""
    if sections:
        raw = yaml.safe_load(layout.params.read_text())
        for section, values in sections.items():
            raw[section].update(values)
        layout.params.write_text(yaml.safe_dump(raw, sort_keys=False))
    if text_edit is not None:
        layout.params.write_text(text_edit(layout.params.read_text()))


def corpus_file(layout: Layout, split: str, lang: str) -> Path:
    """The custom corpus file of the project's params."""
    raw = yaml.safe_load(layout.params.read_text())
    return Path(raw["data"]["files"][split]["src" if lang == "de" else "tgt"])


def own_corpus(layout: Layout, tmp_path: Path) -> None:
    """Give the project a copy of its corpus, so a case can damage it."""
    raw = yaml.safe_load(layout.params.read_text())
    for split, files in raw["data"]["files"].items():
        for side in ("src", "tgt"):
            copy = tmp_path / "corpus" / Path(files[side]).name
            copy.parent.mkdir(exist_ok=True)
            shutil.copy(files[side], copy)
            files[side] = str(copy)
    layout.params.write_text(yaml.safe_dump(raw, sort_keys=False))


# --- params -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace("  hidden:", "  hiden:"), "model.hiden: unknown parameter; did you mean model.hidden?"),
    (lambda t: t + "train:\n  lr: 0.1\n", "train: duplicate key (lines"),
    (lambda t: t.replace("  src: de", "  src: no"), "write 'no' in quotes"),
    (lambda t: t.replace("  - test", "  - ../evil"), "'../evil' is not a valid split name"),
    (lambda t: t.replace("  min_lr: 1.0e-05", "  min_lr: 0.5"), "train.min_lr: 0.5 is above train.lr"),
    (lambda t: t.replace("  max_len_b: 10", "  max_len_b: 0").replace("  max_len_a: 1.5", "  max_len_a: 0"),
     "allows no output token"),
    (lambda t: t + "model: [", "not valid YAML"),
    (lambda t: t.replace("  hidden: 32", "  hidden: 32.5"), "model.hidden: expected int, got 32.5"),
], ids=["typo", "duplicate-section", "yaml-boolean", "split-outside-data", "min-lr-above-lr",
        "no-output-token", "bad-yaml", "float-for-int"])
def test_bad_params_stop_every_stage_with_one_line_and_change_nothing(project, edit, words):
    edit_params(project, edit)
    before = digest(project.root)
    for name in ("download", "train"):
        line = error_line(run_stage(project, name))
        assert words in line and "params.yaml" in line
    assert digest(project.root) == before
    assert not list(project.root.parent.glob("**/evil*"))


def test_a_number_yaml_reads_as_text_means_what_the_user_wrote(project):
    edit_params(project, lambda t: t.replace("  lr: 0.002", "  lr: 1e-3"))  # YAML 1.1: the string '1e-3'
    proc = s2s("info", "--params", str(project.params), cwd=project.root)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["train"]["lr"] == 0.001


# --- corpora ------------------------------------------------------------------------------------------------

def test_unequal_sides_name_both_files_and_keep_the_clean_data_and_its_counts(project, tmp_path):
    own_corpus(project, tmp_path)
    src = corpus_file(project, "valid", "de")
    src.write_text(src.read_text() + "ein hund\n")
    before = digest(project.root / "data" / "clean"), (project.metrics / "data.json").read_bytes()
    run_stage(project, "download")
    line = error_line(run_stage(project, "clean"))
    assert "valid.de has 41 lines but" in line and "valid.en has 40" in line and "line-aligned" in line
    assert (digest(project.root / "data" / "clean"), (project.metrics / "data.json").read_bytes()) == before


def test_invalid_utf8_names_the_file_and_line(project, tmp_path):
    own_corpus(project, tmp_path)
    tgt = corpus_file(project, "test", "en")
    lines = tgt.read_bytes().split(b"\n")
    lines[6] = b"a \xff dog"
    tgt.write_bytes(b"\n".join(lines))
    assert run_stage(project, "download").returncode == 0
    line = error_line(run_stage(project, "clean"))
    assert "test.en:7: invalid UTF-8" in line and "re-encode it as UTF-8" in line


def test_a_megabyte_line_without_spaces_is_dropped_and_counted(project, tmp_path):
    own_corpus(project, tmp_path)
    src = corpus_file(project, "train", "de")
    src.write_text(src.read_text().replace("\n", "\n" + "x" * 1_000_000 + "\n", 1))
    tgt = corpus_file(project, "train", "en")
    tgt.write_text(tgt.read_text().replace("\n", "\nx\n", 1))
    for name in ("download", "clean"):
        proc = run_stage(project, name)
        assert proc.returncode == 0, proc.stderr
    counts = yaml.safe_load((project.metrics / "data.json").read_text())["train"]
    assert counts["dropped"]["too_many_chars"] == 1 and counts["lines_in"] == 301
    assert max(len(line) for line in (project.clean / "train.src").read_text().splitlines()) < 1000


def test_a_long_test_sentence_is_truncated_with_a_warning_never_dropped(project):
    lines = (project.clean / "test.src").read_text().splitlines()
    lines[4] = " ".join(["hund katze"] * 300)
    (project.clean / "test.src").write_text("".join(line + "\n" for line in lines))
    edit_params(project, tensorize={"max_pieces": 40})
    proc = run_stage(project, "tensorize")
    assert proc.returncode == 0, proc.stderr
    assert f"{project.clean / 'test.src'}:5: " in proc.stderr and "truncated to 40" in proc.stderr
    data = ParallelData.load(project.split_tensors("test"))
    assert len(data) == len(lines) and int(data.src_lens.max()) == 40


# --- downloads ----------------------------------------------------------------------------------------------

def test_a_missing_corpus_file_names_the_param_and_keeps_the_raw_data(project, tmp_path):
    edit_params(project, lambda t: t.replace(str(corpus_file(project, "test", "de")), str(tmp_path / "nope.de")))
    before = digest(project.raw)
    line = error_line(run_stage(project, "download"))
    assert "data.files.test.src: no such file" in line and "fix the path in params.yaml" in line
    assert digest(project.raw) == before


def test_an_unreachable_url_lists_the_sources_tried(project):
    edit_params(project, lambda t: t.replace(str(corpus_file(project, "test", "de")),
                                             "http://127.0.0.1:9/test.de.gz"))
    before = digest(project.raw)
    proc = run_stage(project, "download")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: could not fetch custom/" in proc.stderr and "http://127.0.0.1:9/test.de.gz" in proc.stderr
    assert digest(project.raw) == before


def test_a_bad_download_deadline_names_the_variable(project):
    line = error_line(run_stage(project, "download", S2S_DOWNLOAD_DEADLINE="soon"))
    assert "S2S_DOWNLOAD_DEADLINE='soon' is not a positive number of seconds" in line


# --- disk full, unwritable paths (a patched writer, through the scripts' error boundary) -------------------

def run_in_process(capsys, action) -> str:
    """Run ``action`` through :func:`report_faults` as a stage script does; its one error line."""
    codes = []

    def exit(code: int):
        codes.append(code)
        raise SystemExit(code)
    with pytest.raises(SystemExit):
        report_faults(action, exit)
    assert codes == [1]
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def fail_writes(monkeypatch, module, name: str, code: int, when) -> None:
    """Make ``module.name`` (a writer taking a path first) fail with ``code`` for the paths ``when`` picks."""
    real = getattr(module, name)

    def writer(path, *args, **kwargs):
        if when(Path(path)):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(module, name, writer)


def load(layout: Layout) -> Params:
    return params_from_dict(yaml.safe_load(layout.params.read_text()))


def test_a_full_disk_while_clean_writes_its_metrics_keeps_the_old_data_and_counts(project, capsys, monkeypatch):
    import s2s.textio
    edit_params(project, clean={"max_len": 5})  # new data, new counts: neither may land alone
    before = digest(project.root)
    fail_writes(monkeypatch, s2s.textio, "write_text", errno.ENOSPC, lambda p: "data.json" in p.name)
    line = run_in_process(capsys, lambda: stage("clean").run(load(project), project))
    assert "data.json" in line and "no space left on the device" in line and "df -h" in line
    assert digest(project.root) == {**before, "params.yaml": digest(project.root)["params.yaml"]}


def test_a_full_disk_while_training_saves_the_model_names_it_and_keeps_model_and_metrics(project, capsys,
                                                                                         monkeypatch):
    edit_params(project, train={"seed": 7})  # another run: it must not replace the model or metrics
    before = {name: (project.root / name).read_bytes()
              for name in ("models/model.pt", "metrics/train.json", "metrics/speed.json")}
    real_save = torch.save

    def full_disk_for_the_model(payload, handle):  # what torch.save of an open file does on ENOSPC
        if "model.pt" in Path(handle.name).name:
            handle.write(b"PK")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(payload, handle)
    monkeypatch.setattr(torch, "save", full_disk_for_the_model)
    line = run_in_process(capsys, lambda: stage("train").run(load(project), project, logger=Recorder()))
    assert "models/model.pt" in line and "no space left on the device" in line
    assert before == {name: (project.root / name).read_bytes() for name in before}
    assert project.last_checkpoint.exists() and not list(project.root.glob("models/*.part"))


def test_an_unwritable_or_read_only_output_is_one_line(project, capsys, monkeypatch):
    import s2s.textio
    for code, words in ((errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")):
        fail_writes(monkeypatch, s2s.textio, "write_text", code, lambda p: "eval.json" in p.name)
        line = run_in_process(capsys, lambda: stage("evaluate").run(load(project), project))
        assert "eval.json" in line and words in line
        monkeypatch.undo()


def test_translate_into_a_path_under_a_file_is_one_line(project):
    (project.root / "afile").write_text("x")
    line = error_line(s2s("translate", "-m", str(project.model), "-o", str(project.root / "afile" / "out.txt"),
                          cwd=project.root, stdin="ein hund\n"))
    assert "afile" in line


# --- interrupted ----------------------------------------------------------------------------------------------

def test_ctrl_c_of_translate_is_one_line_and_keeps_the_old_output(project):
    out = project.root / "out.txt"
    out.write_text("old\n")
    # Ctrl-C reaches it even when this test runs in a background job, which ignores SIGINT (and so would its child)
    proc = subprocess.Popen([sys.executable, "-m", "s2s.cli", "translate", "-m", str(project.model), "-o", str(out)],
                            cwd=project.root, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc.stdin.write("ein hund\n" * 10)
    proc.stdin.flush()
    first = proc.stderr.readline()  # the device line: the model is being loaded
    time.sleep(3)  # loaded, waiting for more input
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = first + err
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "error: interrupted" in err
    assert out.read_text() == "old\n" and not list(project.root.glob("out.txt.part*"))


# --- model files ----------------------------------------------------------------------------------------------

class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/s2s-fault-suite-payload-ran")


@pytest.mark.parametrize("kind, words", [
    ("missing", "model checkpoint not found"),
    ("garbage", "cannot be read as a checkpoint; it is damaged or not a torch file"),
    ("truncated", "cannot be read as a checkpoint"),
    ("resume-checkpoint", "a resume checkpoint (models/last.pt), not a model"),
    ("foreign", "not an s2s model"),
    ("payload", "not an s2s checkpoint that loads safely"),
    ("nan-weights", "hold NaN or infinite values"),
], ids=lambda value: value if isinstance(value, str) and " " not in value else "")
def test_a_bad_model_file_is_one_line(project, tmp_path, kind, words):
    bad = tmp_path / "bad.pt"
    if kind == "garbage":
        bad.write_bytes(b"not a model" * 100)
    elif kind == "truncated":
        bad.write_bytes(project.model.read_bytes()[:5000])
    elif kind == "resume-checkpoint":
        shutil.copy(project.last_checkpoint, bad)
    elif kind == "foreign":
        torch.save({"weight": torch.zeros(3)}, bad)
    elif kind == "payload":
        MARKER.unlink(missing_ok=True)
        torch.save({"model": Payload()}, bad)
    elif kind == "nan-weights":
        checkpoint = torch.load(project.model, weights_only=True)
        checkpoint["model"]["decoder.embed.weight"][3] = float("nan")
        torch.save(checkpoint, bad)
    line = error_line(s2s("translate", "-m", str(bad), cwd=project.root, stdin="ein hund\n"))
    assert words in line and str(bad) in line
    assert not MARKER.exists()


def test_evaluate_with_a_damaged_model_keeps_the_outputs_and_metrics(project):
    project.model.write_bytes(project.model.read_bytes()[:10_000])
    before = digest(project.root)
    line = error_line(run_stage(project, "evaluate"))
    assert "models/model.pt: cannot be read as a checkpoint" in line
    assert digest(project.root) == before


# --- NaN ------------------------------------------------------------------------------------------------------

def test_a_diverging_training_stops_with_one_line_and_keeps_model_and_metrics(project, capsys, monkeypatch):
    from s2s.model import Seq2Seq
    real, calls = Seq2Seq.token_losses, []

    def nan_at_update_3(self, *args, **kwargs):
        calls.append(1)
        losses = real(self, *args, **kwargs)
        return losses * float("inf") if len(calls) == 3 else losses
    monkeypatch.setattr(Seq2Seq, "token_losses", nan_at_update_3)
    edit_params(project, train={"seed": 7})
    before = digest(project.root)
    line = run_in_process(capsys, lambda: stage("train").run(load(project), project, logger=Recorder()))
    assert "training diverged in epoch 1, update 3: the loss is nan" in line and "Lower train.lr" in line
    after = digest(project.root)
    assert {k: v for k, v in after.items() if k != "models/last.pt"} == \
        {k: v for k, v in before.items() if k != "models/last.pt"}
    assert "Infinity" not in (project.metrics / "train.json").read_text()


class Recorder:
    def log_epoch(self, epoch, metrics):
        pass


# --- concurrent runs --------------------------------------------------------------------------------------------

def test_a_second_stage_in_the_same_project_is_refused_naming_the_first(project):
    with project_lock(project.root, "stage train"):
        before = digest(project.root)
        line = error_line(run_stage(project, "clean"))
    assert f"stage train (pid {os.getpid()}" in line and "is running in this project" in line
    assert digest(project.root) == before


# --- mismatched inputs ------------------------------------------------------------------------------------------

def remake_vocabulary(layout: Layout, vocab_size: int) -> None:
    from s2s.config import SpmConfig
    from s2s.subword import train_subword
    shutil.rmtree(layout.spm)
    train_subword(layout.clean / "train.src", layout.clean / "train.tgt", layout.spm, SpmConfig(vocab_size=vocab_size))


def test_evaluate_refuses_tensors_of_another_vocabulary_and_names_the_stage(project):
    remake_vocabulary(project, 50)
    stage("tensorize").run(load(project), project)  # tensors of the new vocabulary; the model has the old one
    before = digest(project.root)
    line = error_line(run_stage(project, "evaluate"))
    assert "made with another vocabulary than" in line and "models/model.pt" in line and "dvc repro" in line
    assert digest(project.root) == before


def test_train_refuses_tensors_older_than_the_vocabulary(project):
    remake_vocabulary(project, 50)  # spm rerun, tensorize not
    before = digest(project.root)
    line = error_line(run_stage(project, "train"))
    assert "made with another vocabulary than" in line and "dvc repro tensorize" in line
    assert digest(project.root) == before


# --- the traceback, when asked for --------------------------------------------------------------------------------

def test_s2s_debug_and_debug_show_the_traceback(project, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    for proc in (s2s("--debug", "translate", "-m", str(bad), cwd=project.root, stdin="x\n"),
                 s2s("translate", "-m", str(bad), cwd=project.root, stdin="x\n", S2S_DEBUG="1")):
        assert proc.returncode != 0 and "Traceback" in proc.stderr and "S2SError" in proc.stderr


def test_bench_refuses_tensors_older_than_the_vocabulary(project):
    remake_vocabulary(project, 50)
    line = error_line(s2s("bench", "--root", str(project.root), "--params", str(project.params), "--steps", "1",
                          cwd=project.root))
    assert "made with another vocabulary than" in line and "dvc repro tensorize" in line
