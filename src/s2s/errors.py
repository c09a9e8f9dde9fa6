"""The one exception type for errors a user can cause and fix.

The CLI turns an :class:`S2SError` into one line on stderr and exit code 1,
without a traceback; every other exception is a bug and keeps its traceback.
"""


class S2SError(Exception):
    """A problem with the user's input (params, files, data) and how to fix it."""
