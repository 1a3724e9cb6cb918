"""Live events over Redis pub/sub, published after commit. Losing one (Redis down) only
delays a live page; the database stays the record."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from app.core.transaction import after_commit
from app.extensions import db, redis_client

log = logging.getLogger(__name__)
CHANNEL_PREFIX = "fairbid:"
AUDIT_CHANNEL = CHANNEL_PREFIX + "audit"


def publish_after_commit(channel: str, payload: dict[str, Any]) -> None:
    message = json.dumps(payload, sort_keys=True, default=str)
    client = redis_client.client

    def publish() -> None:
        try:
            client.publish(channel, message)
        except redis.RedisError:
            log.warning("Redis unavailable: live event on %s not published", channel)

    after_commit(db.session(), publish)
