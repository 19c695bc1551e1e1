"""Notifications: CloudEvents 1.0 (structured JSON) POSTed to a URL, in the background.

Used by the kinds that notify (FlinkJarJob's `smn_topic`, DagJob's `Notification.Topic`); the
Kubernetes Event for the same occurrence is the caller's (Reconciler.post_events). `send` returns
at once: delivery runs as a task with a timeout and bounded retries, so a slow or dead endpoint
never blocks a reconcile; `on_done(delivered)` lets the caller count deliveries in status.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from lakejob.http import Http

log = logging.getLogger("lakejob.notify")
CONTENT_TYPE = "application/cloudevents+json"


def cloudevent(type_: str, source: str, subject: str, data: dict[str, Any], event_id: str | None = None,
               time: datetime | None = None) -> dict[str, Any]:
    """A CloudEvents 1.0 event in structured JSON mode."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "subject": subject,
        "time": (time or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "datacontenttype": "application/json",
        "data": data,
    }


class Notifier:
    def __init__(self, http: Http, retries: int = 3, timeout_s: float = 5.0, backoff_s: float = 1.0):
        self.http, self.retries, self.timeout_s, self.backoff_s = http, retries, timeout_s, backoff_s
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, url: str, event: dict[str, Any], on_done: Callable[[bool], None] | None = None) -> None:
        """Deliver in the background: up to 1 + `retries` tries, a timeout each, backoff doubling."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, event, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, event: dict[str, Any], on_done: Callable[[bool], None] | None) -> None:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            status = await self.http.post_json(url, event, {"Content-Type": CONTENT_TYPE}, self.timeout_s)
            if 200 <= status < 300:
                if on_done:
                    on_done(True)
                return
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("notification %s (%s) to %s not delivered after %d tries", event["type"], event["id"], url,
                    self.retries + 1)
        if on_done:
            on_done(False)

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
