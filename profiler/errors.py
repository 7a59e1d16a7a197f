"""The errors a user can fix: one line on stderr and exit 2. Anything else is a bug (exit 1).

Each layer has its own base, so imports keep running one way (workloads → backends → profiler):
`workloads.errors.WorkloadError` (bad workload input), `backends.errors.BackendError` (the
endpoint or its answers cannot be used) and `UserError` here (bad flags, run folders, prices).
All three subclass ValueError, so callers that catch ValueError keep working; a ValueError from a
library (pandas, numpy) is *not* one of them and is reported as an internal error.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or an unusable environment, said in one line for the user."""


class Interrupted(BaseException):
    """The sweep was asked to stop (SIGINT/SIGTERM) and has recorded the point it was on; the CLI
    exits with 128 + `signum` (130, 143). A BaseException, like KeyboardInterrupt: no handler
    for errors may swallow it."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
