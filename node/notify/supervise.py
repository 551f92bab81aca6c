"""Keep a child process running: restart it when it fails, stop it when asked.

``intelshare worker`` runs the Celery worker under this. Celery's worker
exits on what it calls an *unrecoverable error*, and kombu's Redis transport
raises some of those when the broker connection drops at a bad moment
(while restoring unacknowledged messages, for instance). Nothing is lost
when that happens — the tasks are unacknowledged at the broker and the
outbox sweep resends what was never confirmed — but a worker that stays
down delays every notification until an operator notices. So the command
restarts its worker, with a backoff, the way a service manager would; the
child dies with its supervisor (``PR_SET_PDEATHSIG``), so SIGKILL of the
supervisor does not leave an orphan consuming tasks.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))


def supervise(
    argv: Sequence[str], *, backoff: float = 1.0, backoff_max: float = 30.0, healthy: float = 60.0
) -> int:
    """Run ``argv`` until SIGTERM/SIGINT; restart it whenever it exits on its own."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    delay = backoff
    code = 0
    while not stopping.is_set():
        started = time.monotonic()
        child = subprocess.Popen(list(argv), preexec_fn=_die_with_parent)  # noqa: S603
        code = child.wait()
        if stopping.is_set():
            break
        if time.monotonic() - started > healthy:
            delay = backoff
        log.warning("worker exited with status %d; starting it again in %.0fs", code, delay)
        stopping.wait(delay)
        delay = min(delay * 2, backoff_max)
    if child is not None and child.poll() is None:
        child.wait()
    return code
