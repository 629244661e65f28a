"""Named kill points for the fault-injection tests (``tests/faults/``).

Contract: :func:`kill_point` ends the process at once -- no cleanup, no ``finally``, exit status
137 as after ``kill -9`` -- when the environment variable ``DRIFTLINE_FAULT`` equals the point's
name, and does nothing otherwise. The points sit where a real crash would hurt most: while a
snapshot is published, after training, after registering, between moving the champion alias and
completing its history, before the decision record. The tests kill a run at each and then check
that the next ordinary run repairs everything and loses nothing.
"""

from __future__ import annotations

import os

#: Every point a test may name.
POINTS = ("snapshot_publish", "train", "register", "alias_move", "history_write", "report")


def kill_point(name: str) -> None:
    """Die here if ``DRIFTLINE_FAULT`` names this point."""
    if os.environ.get("DRIFTLINE_FAULT") == name:
        os._exit(137)
