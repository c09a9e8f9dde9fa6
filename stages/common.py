"""What every stage script shares: the check that it runs this checkout's ``s2s``, and its ``main``.

DVC hashes the files under ``src/s2s``; a stage must run exactly those. This
module is imported before any ``s2s`` module, and stops the stage when
``import s2s`` would load another copy (a non-editable install, another checkout).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = (ROOT / "src" / "s2s").resolve()  # a src/ that is a link counts as its target


def check_checkout_package() -> None:
    """Exit with a message unless ``import s2s`` resolves to ``ROOT/src/s2s``."""
    spec = importlib.util.find_spec("s2s")
    found = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
    if found != PACKAGE:
        where = f"finds {found}" if found else "finds no s2s package"
        sys.exit(f"error: this stage runs the code of {PACKAGE}, but `import s2s` {where}; "
                 f"install this checkout in editable mode (`make setup`, or `pip install -e {ROOT}`) "
                 f"and run DVC from its environment (`source {ROOT}/.venv/bin/activate`)")


check_checkout_package()

from s2s.config import Params, load_params  # noqa: E402  (after the check above)
from s2s.errors import S2SError  # noqa: E402
from s2s.layout import Layout  # noqa: E402


def main(run: Callable[[Params, Layout], object]) -> None:
    """Run a stage on this checkout's ``params.yaml`` and files; a user error is one line and exit 1."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    layout = Layout(ROOT)
    try:
        run(load_params(layout.params), layout)
    except S2SError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
