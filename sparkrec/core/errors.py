"""The one base of every error a job reports to its user in one line.

Each job's `__main__` catches `SparkrecError` and exits non-zero with the job's
name and the message: bad input, settings or outputs, never a traceback. Every
other exception is a bug, and keeps its traceback.
"""

from __future__ import annotations


class SparkrecError(ValueError):
    """Input, settings or output the job cannot use; the message is one line naming the file and the reason."""
