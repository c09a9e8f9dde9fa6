import dataclasses

import pytest
import torch

from s2s.checkpoint import fingerprint, load_checkpoint, load_model, load_models, resume_point, save_model
from s2s.errors import S2SError
from s2s.model import Seq2Seq
from s2s.model.ensemble import Ensemble
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import build_model
from test_train import with_train


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(S2SError, match="dvc repro train"):
        load_model(tmp_path / "none.pt", torch.device("cpu"))


def test_resume_needs_the_same_training_params_and_data(tiny_project, tiny_params, tmp_path):
    data = ParallelData.load(tiny_project.split_tensors("train"))
    last = tmp_path / "last.pt"
    torch.save({"fingerprint": fingerprint(tiny_params, data), "progress": {"stopped": False},
                "model": {"w": torch.zeros(2)}}, last)
    assert resume_point(last, tiny_params, data) is not None
    # evaluate's decoding settings, threads and checkpoint frequency do not throw progress away
    decoding = dataclasses.replace(tiny_params.eval, beam=1, len_penalty=0.6)
    assert resume_point(last, dataclasses.replace(tiny_params, eval=decoding), data) is not None
    assert resume_point(last, with_train(tiny_params, threads=1, checkpoint_every=7), data) is not None
    # what changes the trained model does: an unfinished checkpoint of other params is ignored
    valid_decoding = dataclasses.replace(tiny_params.eval, max_len_b=3)
    for other in (with_train(tiny_params, lr=0.01), dataclasses.replace(tiny_params, eval=valid_decoding),
                  dataclasses.replace(tiny_params, model=dataclasses.replace(tiny_params.model, hidden=16))):
        assert resume_point(last, other, data) is None
    assert resume_point(last, tiny_params, ParallelData.load(tiny_project.split_tensors("valid"))) is None


def test_a_saved_model_loads_with_its_params_and_vocabularies(tiny_project, tiny_params, tmp_path):
    vocabs = Vocabs.load(tiny_project.spm)
    torch.manual_seed(0)
    model = build_model(tiny_params.model, vocabs)
    path = tmp_path / "models" / "m.pt"
    save_model(path, model.state_dict(), tiny_params, vocabs, step=7)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]  # no .part left beside it
    loaded, checkpoint = load_model(path, torch.device("cpu"))
    assert not loaded.training and loaded.config == tiny_params.model
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in loaded.state_dict().items())
    assert checkpoint["step"] == 7 and checkpoint["params"] == dataclasses.asdict(tiny_params)
    assert Vocabs.from_protos(checkpoint["spm"]).tgt.encode("ein hund") == vocabs.tgt.encode("ein hund")


class Payload:
    """Unpickling this runs code: what a crafted model file would do."""

    def __reduce__(self):
        import os
        return (os.system, ("touch payload-ran",))


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crafted = tmp_path / "model.pt"
    torch.save({"model": Payload()}, crafted)
    with pytest.raises(S2SError, match=r"model\.pt: not an s2s checkpoint that loads safely .*use a model s2s wrote"):
        load_model(crafted, torch.device("cpu"))
    assert not (tmp_path / "payload-ran").exists()


def test_a_damaged_checkpoint_is_one_clear_error(tmp_path):
    damaged = tmp_path / "model.pt"
    damaged.write_bytes(b"not a torch file")
    with pytest.raises(S2SError, match=r"model\.pt: cannot be read as a checkpoint; it is damaged or not a torch file"):
        load_model(damaged, torch.device("cpu"))


def test_a_resume_checkpoint_or_a_foreign_torch_file_given_as_a_model_is_one_clear_error(trained_project, tmp_path):
    with pytest.raises(S2SError, match="a resume checkpoint .*not a model; give the models/model.pt"):
        load_model(trained_project.last_checkpoint, torch.device("cpu"))
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(S2SError, match="not an s2s model"):
        load_model(foreign, torch.device("cpu"))


def test_a_model_with_non_finite_weights_is_refused(trained_project, tmp_path):
    checkpoint = torch.load(trained_project.model, weights_only=True)
    checkpoint["model"]["decoder.embed.weight"][0, 0] = float("inf")
    broken = tmp_path / "model.pt"
    torch.save(checkpoint, broken)
    with pytest.raises(S2SError, match="hold NaN or infinite values .*decoder.embed.weight.*diverged run"):
        load_model(broken, torch.device("cpu"))


def test_several_model_files_load_as_one_ensemble_of_one_vocabulary(trained_project, tmp_path):
    one, checkpoint = load_models([trained_project.model], torch.device("cpu"))
    assert isinstance(one, Seq2Seq) and checkpoint["spm"]
    ensemble, first = load_models([trained_project.model, trained_project.model], torch.device("cpu"))
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 2 and not ensemble.training
    assert first["params"] == checkpoint["params"]
    other = load_checkpoint(trained_project.model, "cpu")
    other["spm"] = {name: proto + b"\x00" for name, proto in other["spm"].items()}
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(S2SError, match="other.pt: its SentencePiece models differ from those of"):
        load_models([trained_project.model, tmp_path / "other.pt"], torch.device("cpu"))
