"""The public announcement list is cached in Redis; publication bumps a generation number
so every cached page is stale at once. Redis down: the page is computed, never refused."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis
from flask import current_app

from app.core.transaction import after_commit
from app.extensions import db, redis_client

log = logging.getLogger(__name__)
GENERATION_KEY = "fairbid:portal:generation"


@dataclass(frozen=True)
class Slot:
    """Where a page is cached, and the generation it was computed under."""

    key: str
    generation: str


def cache_key(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"fairbid:portal:page:{digest}"


def get_cached(parts: tuple[str, ...]) -> tuple[str | None, Slot | None]:
    """(cached value, slot to store under); (None, None) when Redis is unavailable.

    One round trip (MGET of the generation and the page): the page is stored with the
    generation it was computed under, and is a hit only while that is still current.
    (Two sequential GETs, generation then page, were most of a cached request's time:
    bench/README.md.)"""
    key = cache_key(*parts)
    try:
        generation, value = redis_client.client.mget(GENERATION_KEY, key)
    except redis.RedisError:
        return None, None
    current = generation.decode() if generation else "0"
    if value is not None:
        stored, _, page = value.decode().partition("\n")
        if stored == current:
            return page, Slot(key, current)
    return None, Slot(key, current)


def store(slot: Slot | None, value: str) -> None:
    if slot is None:
        return
    try:
        redis_client.client.set(
            slot.key, f"{slot.generation}\n{value}", ex=current_app.config["PORTAL_CACHE_SECONDS"]
        )
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
