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
