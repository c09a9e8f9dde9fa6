"""Where the peer benchmark runs: this folder's paths, the project's python, and Joey NMT's own venv.

s2s and Joey NMT 2.3.0 need different packages, so each runs in its own environment: s2s in the
project's ``.venv`` (``run.py`` re-executes itself there when started with another python), Joey in
this folder's ``.venv``, created on first use. Nothing here imports s2s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VENV = HERE / ".venv"  # Joey NMT's environment (git ignores it)
WORK = HERE / "work"  # scratch: Joey's config, vocabulary, test subsets, logs, checkpoints (ignored)
RESULTS = HERE / "results"  # the result files, committed
# torch first, so that joeynmt's dependency on torch is already met by the build pip finds
JOEY_PACKAGES = [["torch==2.13.0"], ["joeynmt==2.3.0", "importlib_metadata", "sentencepiece==0.2.0"]]
# Joey calls SentencePieceProcessor.SetVocabulary, which sentencepiece 0.2.3 lacks
JOEY_PROBE = ("import joeynmt, importlib_metadata, sentencepiece as s; "
              "assert hasattr(s.SentencePieceProcessor, 'SetVocabulary')")


def log(message: str) -> None:
    """One line of progress, time-stamped, flushed at once (the runs take an hour)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_project_python(script: Path) -> None:
    """Make ``import s2s`` work: when it does not, re-execute ``script`` (same arguments) under the
    project's ``.venv/bin/python``, or stop with the command to use when there is none."""
    try:
        import s2s  # noqa: F401
    except ImportError:
        project_python = REPO / ".venv" / "bin" / "python"
        if project_python.exists() and Path(sys.prefix).resolve() != project_python.parents[1].resolve():
            os.execv(str(project_python), [str(project_python), str(script), *sys.argv[1:]])
        sys.exit(f"s2s is not importable; run with the project's environment: {project_python} {script}")


def ensure_joey_venv() -> Path:
    """The python of this folder's .venv with Joey NMT 2.3.0; the venv is created (in about a minute)
    when it is missing or does not import Joey."""
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", JOEY_PROBE], capture_output=True,
                                          check=False).returncode == 0:
        return python
    log(f"creating {VENV} (torch 2.13.0 CPU, joeynmt 2.3.0, sentencepiece 0.2.0)")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for packages in JOEY_PACKAGES:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *packages], check=True)
    if subprocess.run([str(python), "-c", JOEY_PROBE], check=False).returncode != 0:
        sys.exit(f"{VENV}: Joey NMT does not import after installation")
    return python
