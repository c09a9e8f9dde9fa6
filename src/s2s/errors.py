"""The one exception type for errors a user can cause and fix, and how any fault reaches the user.

The CLI and the stage scripts run their work through :func:`report_faults`: an
:class:`S2SError`, a file-system error (disk full, permission denied, a
read-only or missing path) or running out of memory becomes one line on
stderr naming the file and the fix, and exit code 1. Anything else is a bug
and keeps its traceback; so does every fault with ``S2S_DEBUG=1`` (the CLI's
``--debug``).
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable, NoReturn, Optional

DEBUG_ENV = "S2S_DEBUG"


class S2SError(Exception):
    """A problem with the user's input (params, files, data) and how to fix it."""


class ConfigError(S2SError):
    """An invalid params file: unknown key, wrong type, or value out of range."""


def debugging() -> bool:
    """Whether ``S2S_DEBUG`` asks for full tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def os_error_message(err: OSError) -> str:
    """One line for a file-system error: what happened to which file, and what to do."""
    name = err.filename if err.filename is not None else "a file"
    where = os.path.dirname(os.path.abspath(err.filename)) if err.filename is not None else "."
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on the device" if code == errno.ENOSPC else "disk quota exceeded"
        return (f"{name}: {what}; free some space there (`df -h {where}`) and run again "
                "(files written through a .part file keep their previous content)")
    if code in (errno.EACCES, errno.EPERM):
        return f"{name}: permission denied; make it (or its directory) writable by you, or write elsewhere"
    if code == errno.EROFS:
        return f"{name}: read-only file system; run where the project's files can be written"
    if code == errno.ENOENT:
        return f"{name}: no such file or directory; check the path (or run the stage that writes it)"
    if code == errno.EEXIST:
        return f"{name}: exists and is not a directory; give a path whose directories can be made"
    if code == errno.EISDIR:
        return f"{name}: is a directory; give the path of a file"
    if code == errno.ENOTDIR:
        return f"{name}: a part of this path is a file, not a directory; fix the path"
    return f"{name}: {err.strerror or err}"


def fault_message(err: BaseException) -> Optional[str]:
    """The one line a user sees for ``err``, or None for a bug (which keeps its traceback)."""
    if isinstance(err, S2SError):
        return str(err)
    if isinstance(err, OSError):
        return os_error_message(err)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or (
            isinstance(err, RuntimeError) and "can't allocate memory" in str(err)):
        return ("out of memory; lower train.batch_tokens (training) or eval.batch_size / --batch-size "
                "(decoding), or the input limits clean.max_chars and tensorize.max_pieces")
    return None


def report_faults(action: Callable[[], object], exit: Callable[[int], NoReturn] = sys.exit) -> None:
    """Run ``action``; a fault a user can fix is one ``error: ...`` line on stderr and ``exit(1)``."""
    try:
        action()
    except KeyboardInterrupt:
        if debugging():
            raise
        print("error: interrupted; outputs written through .part files keep their previous content",
              file=sys.stderr)
        exit(130)
    except Exception as err:  # noqa: BLE001 - sorted below: bugs are re-raised
        message = fault_message(err)
        if message is None or debugging():
            raise
        print(f"error: {message}", file=sys.stderr)
        exit(1)
