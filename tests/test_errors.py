"""How faults reach the user: one line naming the file and the fix, or the traceback of a bug."""

from __future__ import annotations

import errno

import pytest

from s2s.errors import S2SError, fault_message, report_faults


class Exited(Exception):
    def __init__(self, code: int):
        self.code = code


def _exit(code: int):
    raise Exited(code)


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, ["no space left", "df -h", "previous content"]),
    (errno.EDQUOT, ["quota"]),
    (errno.EACCES, ["permission denied", "writable"]),
    (errno.EROFS, ["read-only file system"]),
    (errno.ENOENT, ["no such file"]),
    (errno.EEXIST, ["not a directory"]),
])
def test_a_file_system_error_names_the_file_and_the_fix(code, words):
    message = fault_message(OSError(code, "strerror", "/data/out/model.pt"))
    assert message.startswith("/data/out/model.pt: ")
    for word in words:
        assert word in message
    assert "\n" not in message


def test_running_out_of_memory_names_the_params_that_bound_it():
    message = fault_message(MemoryError())
    assert "train.batch_tokens" in message and "tensorize.max_pieces" in message
    assert fault_message(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ...")) == message


def test_a_bug_is_not_a_fault_of_the_user():
    assert fault_message(KeyError("model")) is None
    assert fault_message(RuntimeError("shape mismatch")) is None


def test_report_faults_prints_one_line_and_exits_1(capsys, monkeypatch):
    monkeypatch.delenv("S2S_DEBUG", raising=False)

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", "metrics/data.json")
    with pytest.raises(Exited) as exited:
        report_faults(full_disk, _exit)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: metrics/data.json: no space left") and err.count("\n") == 1
    with pytest.raises(Exited):
        report_faults(lambda: (_ for _ in ()).throw(S2SError("bad input; fix it")), _exit)
    assert capsys.readouterr().err == "error: bad input; fix it\n"


def test_a_bug_and_every_fault_under_s2s_debug_keep_their_traceback(monkeypatch):
    monkeypatch.delenv("S2S_DEBUG", raising=False)
    with pytest.raises(KeyError):
        report_faults(lambda: {}["missing"], _exit)
    monkeypatch.setenv("S2S_DEBUG", "1")
    with pytest.raises(S2SError):
        report_faults(lambda: (_ for _ in ()).throw(S2SError("bad")), _exit)


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    monkeypatch.delenv("S2S_DEBUG", raising=False)

    def interrupted():
        raise KeyboardInterrupt
    with pytest.raises(Exited) as exited:
        report_faults(interrupted, _exit)
    assert exited.value.code == 130
    assert capsys.readouterr().err.startswith("error: interrupted")
