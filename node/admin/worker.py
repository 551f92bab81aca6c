"""``intelshare worker`` and ``intelshare node webhook ...``.

``intelshare worker --config FILE [--beat]`` runs the node's Celery worker
(threads pool by default: the tasks wait on HTTP and the database, not the
CPU); ``--beat`` also runs the scheduler of the periodic tasks (run it in
exactly one worker per agency). The webhook commands are for the agency's
IT team, like ``intelshare node officer ...``: they work on the node's
database with the node's configuration, which is what makes them admin-only.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from intelshare.cli import emit, json_option, print_table
from node.admin.options import config_option
from node.config import NodeConfig, load_config


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@click.command("worker")
@config_option
@click.option("--beat", is_flag=True, help="Also run the periodic tasks (one per agency).")
@click.option(
    "--pool",
    type=click.Choice(["threads", "prefork", "solo"]),
    default="threads",
    show_default=True,
    help="Celery execution pool.",
)
@click.option("--concurrency", type=int, help="Tasks at once (default: node.worker_concurrency).")
@click.option("--hostname", help="Celery node name (default: <agency>-<pid>@<host>).")
@click.option(
    "--schedule",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Beat's schedule file (default: <identity_dir>/worker/beat-schedule).",
)
@click.option(
    "--ready-file", type=click.Path(path_type=Path), help="Write the pid here when ready."
)
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--supervised-child", is_flag=True, hidden=True)
def worker(
    config_path: Path,
    beat: bool,
    pool: str,
    concurrency: int | None,
    hostname: str | None,
    schedule: Path | None,
    ready_file: Path | None,
    log_level: str,
    supervised_child: bool,
) -> None:
    """Run the node's Celery worker: outbox fan-out, webhooks, and with --beat the periodic jobs.

    The command supervises the Celery worker in a child process and starts
    it again when it stops on an error (kombu's Redis transport can give up
    on a broker connection lost at a bad moment), so a Redis outage never
    needs an operator; SIGTERM / Ctrl-C stop both, gracefully.
    """
    from intelshare.logs import configure_logging, log_celery_messages

    configure_logging(log_level)
    # Celery prints a few messages as plain text; keep every line one JSON object.
    log_celery_messages()
    cfg = load_config(config_path)
    if supervised_child:
        _run_celery(cfg, beat, pool, concurrency, hostname, schedule, ready_file, log_level)
        return
    from node.notify.broker import ensure_bundled, uses_bundled
    from node.notify.supervise import supervise

    bundled = ensure_bundled(cfg) if uses_bundled(cfg) else None
    argv = [a for a in sys.argv[1:] if a != "--supervised-child"]
    try:
        supervise([sys.executable, "-m", "intelshare.cli", *argv, "--supervised-child"])
    finally:
        if bundled is not None:
            bundled.stop()


def _run_celery(
    cfg: NodeConfig,
    beat: bool,
    pool: str,
    concurrency: int | None,
    hostname: str | None,
    schedule: Path | None,
    ready_file: Path | None,
    log_level: str,
) -> None:
    from celery import signals

    from node.metrics import serve_worker_metrics
    from node.notify.celery_app import QUEUE
    from node.notify.tasks import make_worker_app
    from node.server import build, open_database

    # Migrate before taking tasks; the tasks' own connections are made on first
    # use, after beat's process was forked off (no connection crosses a fork).
    store = open_database(cfg)
    store.hub.close()
    store.engine.dispose()
    app = make_worker_app(cfg, build)
    serve_worker_metrics(app, cfg)  # before the ready file: a reader may scrape at once
    if ready_file is not None:

        @signals.worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
        def _ready(**_: Any) -> None:
            tmp = ready_file.with_name(ready_file.name + ".tmp")
            tmp.write_text(str(os.getpid()))
            tmp.replace(ready_file)

    argv = [
        "--quiet",  # no banner on stdout: the process logs JSON lines only
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency or cfg.worker_concurrency}",
        f"--hostname={hostname or f'{cfg.agency_id}-{os.getpid()}@%h'}",
        f"--queues={QUEUE}",
        f"--loglevel={log_level.upper()}",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        sched = schedule or cfg.identity_dir / "worker" / "beat-schedule"
        sched.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv += ["--beat", f"--schedule={sched}"]
    app.worker_main(argv)


# --- webhooks ------------------------------------------------------------------------------


def _registry(cfg: NodeConfig) -> Any:
    from intelshare.keys import AgencyKeys
    from node.notify.webhooks import WebhookRegistry
    from node.server import open_database

    store = open_database(cfg)
    return WebhookRegistry(store.engine, AgencyKeys.load(cfg.identity_dir))


@click.group("webhook")
def webhook_group() -> None:
    """Webhooks of this agency: signed POSTs naming each event (ids only, never content)."""


@webhook_group.command("add")
@click.argument("url")
@click.option(
    "--events",
    "events",
    multiple=True,
    required=True,
    help="Event types, comma separated or repeated: alert.received, alert.*, case.*, * ...",
)
@click.option("--allow-http", is_flag=True, help="Allow plain http:// to another host.")
@config_option
@json_option
def webhook_add(
    url: str, events: tuple[str, ...], allow_http: bool, config_path: Path, as_json: bool
) -> None:
    """Register a webhook and print its signing secret (shown only this once)."""
    registry = _registry(load_config(config_path))
    try:
        patterns = [p for chunk in events for p in chunk.split(",")]
        hook, secret = registry.add(url, patterns, allow_http=allow_http)
    finally:
        registry.engine.dispose()
    data = {
        "webhook_id": hook.webhook_id,
        "url": hook.url,
        "events": list(hook.events),
        "secret": secret,
    }

    def table() -> None:
        click.echo(f"webhook {hook.webhook_id} added for {', '.join(hook.events)} -> {hook.url}")
        click.echo(f"signing secret (shown only now; give it to the receiver): {secret}")

    emit(data, as_json=as_json, table=table)


@webhook_group.command("list")
@config_option
@json_option
def webhook_list(config_path: Path, as_json: bool) -> None:
    """List webhooks with their delivery counts (secrets are never shown again)."""
    registry = _registry(load_config(config_path))
    try:
        hooks = registry.list()
        counts = registry.delivery_counts()
    finally:
        registry.engine.dispose()
    data = [
        {
            "webhook_id": h.webhook_id,
            "url": h.url,
            "events": list(h.events),
            # whose it is: the agency's (added here), or an officer's or a rights
            # holder's (added through the API), which the owner alone may change
            "owner": h.officer_id or "agency",
            "holder": h.holder_key,
            "created": _when(h.created_ms),
            "pending": counts.get((h.webhook_id, "pending"), 0),
            "delivered": counts.get((h.webhook_id, "delivered"), 0),
            "dead": counts.get((h.webhook_id, "dead"), 0),
        }
        for h in hooks
    ]
    emit(
        data,
        as_json=as_json,
        table=lambda: print_table(
            ["ID", "OWNER", "URL", "EVENTS", "PENDING", "DELIVERED", "DEAD"],
            [
                [
                    d["webhook_id"],
                    d["owner"] if d["holder"] is None else f"{d['owner']} ({d['holder']})",
                    d["url"],
                    ",".join(d["events"]),
                    d["pending"],
                    d["delivered"],
                    d["dead"],
                ]
                for d in data
            ],
        ),
    )


@webhook_group.command("remove")
@click.argument("webhook_id")
@config_option
def webhook_remove(webhook_id: str, config_path: Path) -> None:
    """Remove a webhook and its pending deliveries and dead letters."""
    registry = _registry(load_config(config_path))
    try:
        registry.remove(webhook_id)
    finally:
        registry.engine.dispose()
    click.echo(f"webhook {webhook_id} removed")


@webhook_group.group("dead-letters")
def dead_letters() -> None:
    """Deliveries that failed every attempt."""


@dead_letters.command("list")
@config_option
@json_option
def dead_list(config_path: Path, as_json: bool) -> None:
    """List dead letters, oldest event first."""
    registry = _registry(load_config(config_path))
    try:
        dead = registry.dead_letters()
    finally:
        registry.engine.dispose()
    data = [
        {
            "webhook_id": d.webhook_id,
            "event_id": d.event_id,
            "cursor": d.seq,
            "attempts": d.attempts,
            "last_status": d.last_status,
            "last_error": d.last_error,
            "dead": _when(d.dead_ms),
        }
        for d in dead
    ]
    emit(
        data,
        as_json=as_json,
        table=lambda: print_table(
            ["WEBHOOK", "EVENT", "ATTEMPTS", "LAST ERROR", "DEAD SINCE"],
            [
                [d["webhook_id"], d["event_id"], d["attempts"], d["last_error"], d["dead"]]
                for d in data
            ],
        ),
    )


@dead_letters.command("retry")
@click.option("--webhook", "webhook_id", help="Only this webhook's dead letters.")
@click.option("--event", "event_id", help="Only this event's dead letters.")
@click.option("--all", "all_", is_flag=True, help="Every dead letter.")
@config_option
def dead_retry(webhook_id: str | None, event_id: str | None, all_: bool, config_path: Path) -> None:
    """Deliver dead letters again, with a fresh attempt budget."""
    if not (webhook_id or event_id or all_):
        raise click.UsageError("name --webhook, --event, or --all")
    cfg = load_config(config_path)
    registry = _registry(cfg)
    try:
        again = registry.retry_dead(webhook_id=webhook_id, event_id=event_id)
    finally:
        registry.engine.dispose()
    sent = _send_deliveries(cfg, again)
    how = "sent to the workers" if sent else "the workers' sweep will send them"
    click.echo(f"{len(again)} dead letters queued again ({how})")


def _send_deliveries(cfg: NodeConfig, keys: list[tuple[str, str]]) -> bool:
    """Hand deliveries to the broker now; False if it cannot be reached (the sweep will)."""
    if not keys:
        return True
    from node.notify.broker import socket_path, uses_bundled
    from node.notify.celery_app import TASK_DELIVER, make_app

    if uses_bundled(cfg) and not socket_path(cfg).exists():
        return False
    app = make_app(cfg)
    try:
        with app.producer_or_acquire() as producer:
            for webhook_id, event_id in keys:
                app.send_task(
                    TASK_DELIVER,
                    args=[webhook_id, event_id],
                    task_id=f"{event_id}:{webhook_id}",
                    producer=producer,
                    retry=False,
                )
    except Exception:
        return False
    finally:
        app.close()
    return True
