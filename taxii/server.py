"""Running the TAXII application under uvicorn: in the foreground, or in a thread."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from taxii.app import make_app
from taxii.config import TaxiiConfig


@dataclass
class RunningTaxii:
    server: uvicorn.Server
    thread: threading.Thread
    port: int
    scheme: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def _uvicorn_config(config: TaxiiConfig) -> uvicorn.Config:
    return uvicorn.Config(
        make_app(config),
        host=config.host,
        port=config.port,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        log_level="warning",
        access_log=False,  # URLs carry 'next' keys; the node audits the reads
        lifespan="on",
    )


def serve(config: TaxiiConfig) -> None:
    """Serve until interrupted."""
    uvicorn.Server(_uvicorn_config(config)).run()


def start(config: TaxiiConfig, timeout: float = 10.0) -> RunningTaxii:
    """Serve in a daemon thread (port 0 picks a free port); return once it listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(config))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="taxii", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the TAXII server did not start")
        time.sleep(0.01)
    return RunningTaxii(server, thread, port, "https" if config.tls_cert else "http")
