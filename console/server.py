"""Serving the console with uvicorn: as a command, or in a thread (tests, demos)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from console.app import create_app
from console.config import ConsoleConfig
from intelshare.config import parse_address

log = logging.getLogger("console")


def _socket(config: ConsoleConfig) -> socket.socket:
    host, port = parse_address("console.listen", config.listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(config: ConsoleConfig, app: Starlette) -> uvicorn.Server:
    tls: dict[str, object] = {}
    if config.tls_cert is not None and config.tls_key is not None:
        tls = {
            "ssl_certfile": str(config.tls_cert),
            "ssl_keyfile": str(config.tls_key),
            "ssl_version": ssl.PROTOCOL_TLS_SERVER,
        }
    uv = uvicorn.Config(
        app,
        log_config=None,  # the process's JSON logging (intelshare.logs) applies
        access_log=False,  # paths carry resource ids; requests are not logged one by one
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=2,
        **tls,  # type: ignore[arg-type]
    )
    return uvicorn.Server(uv)


def url(config: ConsoleConfig, port: int) -> str:
    host, _ = parse_address("console.listen", config.listen)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - describing, not binding
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if config.tls else 'http'}://{host}:{port}"


def _plain(record: logging.LogRecord) -> bool:
    """uvicorn adds an ANSI-coloured copy of its messages; JSON logs want only the text."""
    record.__dict__.pop("color_message", None)
    return True


def serve(config: ConsoleConfig, ready_file: Path | None = None) -> None:
    """Serve until SIGTERM / Ctrl-C, then exit 0 like the node and the gateway.

    uvicorn stops on the signal and afterwards raises it again for the handler
    that was there before it; that handler does nothing, so the process ends
    normally once the server has shut down.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_plain)
    sock = _socket(config)
    port = sock.getsockname()[1]
    server = _server(config, create_app(config))
    log.info("console for %s on %s", config.node_server_name, url(config, port))
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(str(port))
        tmp.replace(ready_file)
    server.run(sockets=[sock])


@dataclass
class RunningConsole:
    """A console served from a thread of this process."""

    config: ConsoleConfig
    server: uvicorn.Server
    thread: threading.Thread
    port: int
    app: Starlette

    @property
    def url(self) -> str:
        return url(self.config, self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.sessions.close_all()


def start_in_thread(config: ConsoleConfig) -> RunningConsole:
    sock = _socket(config)
    app = create_app(config)
    server = _server(config, app)

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="console", daemon=True)
    thread.start()
    running = RunningConsole(config, server, thread, sock.getsockname()[1], app)
    pause = threading.Event()
    for _ in range(400):
        if server.started:
            return running
        pause.wait(0.025)
    raise RuntimeError("the console did not start within 10 s")
