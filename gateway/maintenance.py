"""The gateway's maintenance thread: expiry, and what other replicas published.

One thread per process (:func:`gateway.server.start` starts it) that

* purges the inbox entries whose envelope expired, every
  ``purge_interval_seconds``, and reloads directory and treaties from the
  database on the same timer;
* reloads them as soon as the wake-up hub says another replica published
  one;
* serves a newer directory the operator wrote to the configured file.

It polls rather than sleeps on the hub (see :func:`background_loop`).
"""

from __future__ import annotations

import logging
import threading
import time

from gateway.state import DIRECTORY_TOPIC, TREATY_TOPIC, GatewayState, ms
from intelshare import errors

log = logging.getLogger(__name__)

#: How often the maintenance thread looks for other replicas' publications.
BACKGROUND_TICK = 0.25


def _pick_up_directory_file(state: GatewayState) -> None:
    """Serve a newer directory the operator wrote to the configured file.

    The operator publishes with ``intelshare directory publish`` into the
    file the gateway is configured with; no extra command or credential is
    needed to push it. An older or invalid file is ignored (and logged).
    """
    path = state.config.directory
    if path is None:
        return
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return
    if mtime == state.directory_file_mtime:
        return
    state.directory_file_mtime = mtime
    try:
        data = path.read_bytes()
        current = state.current_version()
        trusted = state.install_directory(data)
        if trusted.version > current:
            state.store.save_directory(trusted.version, trusted.signed_bytes, ms(state.clock()))
            state.store.record("directory_published", {"version": trusted.version})
            state.hub.notify(DIRECTORY_TOPIC)
            log.info("serving directory version %d from %s", trusted.version, path)
    except errors.IntelshareError as exc:
        log.warning("directory file %s not used: %s", path, exc.message)


def background_loop(state: GatewayState, stop: threading.Event) -> None:
    """Purge expired entries and pick up other replicas' publications."""
    next_purge = 0.0
    seen_dir = state.hub.generation(DIRECTORY_TOPIC)
    seen_treaty = state.hub.generation(TREATY_TOPIC)
    while not stop.is_set():
        if time.monotonic() >= next_purge:
            try:
                purged = state.store.purge_expired(ms(state.clock()))
                state.metrics.expired.inc(purged)
                if purged:
                    log.info("purged %d expired inbox entries", purged)
                state.reload()
            except Exception:
                log.exception("background maintenance failed")
            next_purge = time.monotonic() + state.config.purge_interval_seconds
        _pick_up_directory_file(state)
        d = state.hub.generation(DIRECTORY_TOPIC)
        t = state.hub.generation(TREATY_TOPIC)
        if d != seen_dir or t != seen_treaty:
            seen_dir, seen_treaty = d, t
            try:
                state.reload()
            except Exception:
                log.exception("reload failed")
        # Polled rather than woken: the hub wakes its waiters on every topic,
        # and this thread would otherwise be woken by every accepted envelope.
        stop.wait(BACKGROUND_TICK)
