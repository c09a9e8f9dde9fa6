import pytest

from s2s.atomic import atomic_path, write_bytes, write_text


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
