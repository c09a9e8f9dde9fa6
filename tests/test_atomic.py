import os
from pathlib import Path

import pytest

from s2s.atomic import atomic_directory, atomic_path, write_bytes, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_part(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as part:
            part.write_text("half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_writes_create_parents_and_replace(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    write_bytes(target, b"one")
    write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_a_directory_is_replaced_whole_and_stale_files_go(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as part:
        (part / "a").write_text("one")
        (part / "stale").write_text("written only by the first run")
    with atomic_directory(target) as part:
        (part / "a").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert (target / "a").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_directory_write_keeps_the_old_directory_and_leaves_no_part(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as part:
        (part / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as part:
            (part / "a").write_text("new")
            raise RuntimeError("interrupted after the first file")
    assert [p.name for p in target.iterdir()] == ["a"] and (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_run_killed_between_the_renames_gets_its_old_directory_back(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as part:
        (part / "a").write_text("old")
    os.replace(target, tmp_path / "out.old.part")          # as a kill between the two renames leaves it
    (tmp_path / "out.part").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_directory(target):
            raise RuntimeError("fails again")
    assert (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupt_between_the_renames_puts_the_old_directory_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with atomic_directory(target) as part:
        (part / "a").write_text("old")
    real_replace = os.replace

    def interrupted_second_rename(source, destination):
        if Path(source).name == "out.part":
            raise KeyboardInterrupt  # Ctrl-C after the old directory moved aside
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", interrupted_second_rename)
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as part:
            (part / "a").write_text("new")
    assert (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stage_outputs_are_all_new_or_all_as_they_were(tmp_path):
    from s2s.atomic import stage_outputs
    data, metrics = tmp_path / "data", tmp_path / "metrics" / "m.json"
    with stage_outputs() as outputs:
        (outputs.directory(data) / "a.txt").write_text("old")
        outputs.file(metrics).write_text("old")
    with pytest.raises(OSError):
        with stage_outputs() as outputs:
            (outputs.directory(data) / "a.txt").write_text("new")
            outputs.file(metrics)
            raise OSError(28, "No space left on device", str(metrics))  # the metrics could not be written
    assert (data / "a.txt").read_text() == "old" and metrics.read_text() == "old"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "data", "m.json", "metrics"]
    with stage_outputs() as outputs:
        (outputs.directory(data) / "a.txt").write_text("new")
        outputs.file(metrics).write_text("new")
    assert (data / "a.txt").read_text() == "new" and metrics.read_text() == "new"


def test_a_full_disk_while_saving_tensors_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import torch

    from s2s.atomic import save_torch
    target = tmp_path / "model.pt"
    save_torch({"w": torch.ones(2)}, target)
    before = target.read_bytes()

    def disk_full(payload, handle):  # what torch.save does when a write of its file object fails
        handle.write(b"PK")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError) as failure:
        save_torch({"w": torch.zeros(2)}, target)
    assert failure.value.errno == 28 and failure.value.filename == str(target)
    assert target.read_bytes() == before and list(tmp_path.iterdir()) == [target]
