"""Named crash points for fault-injection tests.

MICROBANK_FAULTS=accounts.after_postings_commit makes the process SIGKILL itself at that
point, so a test can crash it exactly between two steps instead of relying on timing.
Unset in every real deployment.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if name in os.environ.get("MICROBANK_FAULTS", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
