"""One stage at a time per project: a second one stops with a message naming the first."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from s2s.project_lock import LOCK_NAME, ProjectBusy, project_lock


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    with project_lock(tmp_path, "stage train"):
        with pytest.raises(ProjectBusy, match=r"stage train \(pid \d+, started .*\) is running in this project"):
            with project_lock(tmp_path, "stage clean"):
                pass
    with project_lock(tmp_path, "stage clean"):  # released when the block ends
        assert "stage clean" in (tmp_path / LOCK_NAME).read_text()


def test_the_lock_of_a_killed_process_is_released_by_the_kernel(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from s2s.project_lock import project_lock
        with project_lock({str(tmp_path)!r}, "stage train"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProjectBusy, match=f"pid {holder.pid}"):
            with project_lock(tmp_path, "stage clean"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with project_lock(tmp_path, "stage clean"):  # no stale lock after kill -9
        pass
