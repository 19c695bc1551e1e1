"""Notifications: CloudEvents 1.0 (structured JSON) POSTed to a URL, in the background.

Used by the kinds that notify (FlinkJarJob's `smn_topic`, DagJob's `Notification.Topic`) through
controllers.base's outbox: the events are written to the CR's status first, then `deliver` POSTs
them one by one (timeout, bounded retries) in a background task per CR, so a slow or dead
endpoint never blocks a reconcile and an operator that stops loses none. The Kubernetes Event for
the same occurrence is the caller's (Reconciler.post_events).
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
    def __init__(self, http: Http, retries: int = 3, timeout_s: float = 5.0, backoff_s: float = 1.0,
                 fence: Callable[[], None] | None = None):
        self.http, self.retries, self.timeout_s, self.backoff_s = http, retries, timeout_s, backoff_s
        # Leader election's fence (lakejob.leader.Elector.fence), called before each try: a
        # replica that may have lost the lease must not deliver what the new leader delivers too.
        self.fence = fence

    async def deliver(self, url: str, event: dict[str, Any]) -> bool:
        """POST one event: up to 1 + `retries` tries, a timeout each, backoff doubling. True when
        the endpoint took it (2xx); never raises for the endpoint's sake."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            if self.fence is not None:
                self.fence()
            status = await self.http.post_json(url, event, {"Content-Type": CONTENT_TYPE}, self.timeout_s)
            if 200 <= status < 300:
                return True
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("notification %s (%s) to %s not delivered after %d tries", event["type"], event["id"], url,
                    self.retries + 1)
        return False
