"""What every stage script shares: it runs this checkout's ``s2s``, and its ``main``.

DVC hashes the files under ``src/s2s``; a stage must run exactly those, also
where DVC runs it in a copy of the workspace (``dvc exp run --queue`` or
``--temp``), not where the package is installed. This module is imported before
any ``s2s`` module: it puts this checkout's ``src/`` first on the import path, and
stops the stage when ``import s2s`` would still load another copy (this
checkout has no ``src/s2s``, or another copy was imported already).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = (ROOT / "src" / "s2s").resolve()  # a src/ that is a link counts as its target


def use_checkout_package() -> None:
    """Make ``import s2s`` load ``ROOT/src/s2s``; exit with a message when it would load another copy."""
    sys.path.insert(0, str(ROOT / "src"))
    spec = importlib.util.find_spec("s2s")
    found = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
    if found != PACKAGE:
        where = f"finds {found}" if found else "finds no s2s package"
        sys.exit(f"error: this stage runs the code of {PACKAGE}, but `import s2s` {where}; "
                 f"run the stage from a complete checkout (`git status` shows what is missing), with "
                 f"its environment installed (`make setup`, or `pip install -e {ROOT}`)")


use_checkout_package()

from s2s.config import Params, load_params  # noqa: E402  (after the check above)
from s2s.errors import report_faults  # noqa: E402
from s2s.layout import Layout  # noqa: E402
from s2s.project_lock import project_lock  # noqa: E402


def main(run: Callable[[Params, Layout], object], lock: bool = True) -> None:
    """Run a stage on this checkout's ``params.yaml`` and files, one stage at a time per project
    (``lock=False``: for the training processes of a stage whose launcher holds the lock).

    A fault a user can fix (bad params or data, a full disk, another stage
    running here) is one ``error:`` line and exit 1; ``S2S_DEBUG=1`` shows the traceback.
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    layout = Layout(ROOT)

    def locked_run() -> None:
        with project_lock(ROOT, f"stage {Path(sys.argv[0]).stem}") if lock else contextlib.nullcontext():
            run(load_params(layout.params), layout)
    report_faults(locked_run)
