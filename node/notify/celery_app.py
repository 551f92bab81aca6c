"""The node's Celery application: one per agency, configured from the node's config.

The settings that make delivery at-least-once with nothing lost:

* ``task_acks_late`` — a task's message is acknowledged after the task ran,
  so a worker that dies mid-task leaves it at the broker;
* ``task_reject_on_worker_lost`` — a task whose worker process died is put
  back rather than marked failed;
* ``worker_prefetch_multiplier = 1`` — a worker holds one reserved message
  per slot, so a dead worker strands as few as possible;
* ``visibility_timeout`` (Redis transport) — an unacknowledged message is
  handed to another worker after this long; it is validated to exceed the
  task time limit *and* the longest retry countdown (a task waiting for its
  countdown is unacknowledged too; a shorter timeout would run it twice);
* ``global_keyprefix`` — every key and channel of this agency's queues
  starts with ``<redis_prefix><agency_id>:celery:``, so nodes (and test
  runs) sharing one Redis never consume each other's tasks.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from node.config import NodeConfig
from node.notify.broker import broker_url, key_prefix

QUEUE = "intelshare.notify"

TASK_FAN_OUT = "intelshare.notify.fan_out"
TASK_DELIVER = "intelshare.notify.deliver_webhook"
TASK_SWEEP = "intelshare.notify.sweep"
TASK_EXPIRE = "intelshare.periodic.expire_alerts"
TASK_PURGE = "intelshare.periodic.purge_retention"
TASK_AUDIT_HEAD = "intelshare.periodic.sign_audit_head"
TASK_DIRECTORY = "intelshare.periodic.refresh_directory"
TASK_IPR = "intelshare.periodic.ipr_deadlines"


def beat_schedule(config: NodeConfig) -> dict[str, dict[str, Any]]:
    """The periodic tasks ``intelshare worker --beat`` sends.

    Each expires after one interval: when no worker consumes for a while,
    they do not pile up at the broker (the next tick does the same work).
    """

    def every(task: str, seconds: float) -> dict[str, Any]:
        return {"task": task, "schedule": seconds, "options": {"expires": seconds}}

    sweep = max(0.5, config.notify_deadline_seconds / 2)
    return {
        "notify-sweep": every(TASK_SWEEP, sweep),
        "alert-expiry": every(TASK_EXPIRE, config.maintenance_seconds),
        "retention-purge": every(TASK_PURGE, config.maintenance_seconds),
        "audit-head": every(TASK_AUDIT_HEAD, config.maintenance_seconds),
        "directory-refresh": every(
            TASK_DIRECTORY, min(config.directory_refresh_seconds, config.treaty_refresh_seconds)
        ),
        # IPR: deadline reminders, deadlines passed, recordations expired
        "ipr-deadlines": every(TASK_IPR, config.maintenance_seconds),
    }


def make_app(config: NodeConfig) -> Any:
    """A Celery app for this node, without tasks: what processes that only send need.

    The worker defines the tasks on it with :func:`node.notify.tasks.make_worker_app`.
    """
    app = Celery(f"intelshare-node-{config.agency_id}", set_as_current=False)
    vt = config.notify_visibility_timeout_seconds
    app.conf.update(
        broker_url=broker_url(config),
        broker_transport_options={
            "visibility_timeout": vt,
            # look for messages of dead workers at a pace that fits the timeout
            "unacked_restore_interval": max(1.0, min(10.0, vt / 4)),
            "unacked_restore_throttle": 1,
            "global_keyprefix": key_prefix(config),
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=2,
        broker_pool_limit=4,
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_time_limit=config.notify_task_time_limit_seconds,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_concurrency=config.worker_concurrency,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        enable_utc=True,
        timezone="UTC",
        beat_schedule=beat_schedule(config),
    )
    app.intelshare_config = config
    return app
