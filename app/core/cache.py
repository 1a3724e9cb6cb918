"""The public announcement list is cached in Redis; publication bumps a generation number
so every cached page is stale at once. Redis down: the page is computed, never refused."""

from __future__ import annotations

import hashlib
import logging

import redis
from flask import current_app

from app.core.transaction import after_commit
from app.extensions import db, redis_client

log = logging.getLogger(__name__)
GENERATION_KEY = "fairbid:portal:generation"


def _generation() -> str:
    value = redis_client.client.get(GENERATION_KEY)
    return value.decode() if value else "0"


def cache_key(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"fairbid:portal:{_generation()}:{digest}"


def get_cached(parts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(cached value, key to store under); (None, None) when Redis is unavailable."""
    try:
        key = cache_key(*parts)
        value = redis_client.client.get(key)
    except redis.RedisError:
        return None, None
    return (value.decode() if value is not None else None), key


def store(key: str | None, value: str) -> None:
    if key is None:
        return
    try:
        redis_client.client.set(key, value, ex=current_app.config["PORTAL_CACHE_SECONDS"])
    except redis.RedisError:
        log.warning("Redis unavailable: portal page not cached")


def invalidate_after_commit() -> None:
    client = redis_client.client

    def bump() -> None:
        try:
            client.incr(GENERATION_KEY)
        except redis.RedisError:
            # Stale pages then expire by their time-to-live.
            log.warning("Redis unavailable: portal cache not invalidated")

    after_commit(db.session(), bump)
