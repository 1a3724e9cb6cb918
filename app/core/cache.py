"""The public announcement list is cached in Redis; publication bumps a generation number
so every cached page is stale at once. Redis down: the page is computed, never refused."""

from __future__ import annotations

import hashlib
import logging
import secrets
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


def get_many(*entries: tuple[str, ...]) -> list[tuple[str | None, Slot | None]]:
    """`get_cached` for several entries in the same one round trip (one MGET)."""
    keys = [cache_key(*parts) for parts in entries]
    client = redis_client.client
    try:
        generation, *values = client.mget(GENERATION_KEY, *keys)
        if generation is None:
            _start_generation(client)
            generation = client.get(GENERATION_KEY)
    except redis.RedisError:
        return [(None, None)] * len(entries)
    current = current_generation(generation)
    return [
        (current_value(current, value), Slot(key, current))
        for key, value in zip(keys, values, strict=True)
    ]


def _start_generation(client: redis.Redis | redis.client.Pipeline) -> None:
    """No generation since Redis started or was flushed: a random one, not 0 or 1 again, so
    that nothing a worker keeps under an earlier generation (the portal's centre choices)
    can match it. Set only if still absent (another worker may have just started it)."""
    client.set(GENERATION_KEY, secrets.randbelow(1 << 62), nx=True)


def current_generation(generation: bytes | None) -> str:
    """The generation as MGET read it (none yet: "0")."""
    return generation.decode() if generation else "0"


def current_value(current: str, value: bytes | None) -> str | None:
    """A stored value (as MGET read it) if it was computed under the current generation."""
    if value is None:
        return None
    stored, _, text = value.decode().partition("\n")
    return text if stored == current else None


def get_cached(parts: tuple[str, ...]) -> tuple[str | None, Slot | None]:
    """(cached value, slot to store under); (None, None) when Redis is unavailable.

    One round trip (MGET of the generation and the page): the page is stored with the
    generation it was computed under, and is a hit only while that is still current.
    (Two sequential GETs, generation then page, were most of a cached request's time:
    bench/README.md.)"""
    return get_many(parts)[0]


def store(slot: Slot | None, value: str) -> None:
    if slot is None:
        return
    try:
        redis_client.client.set(
            slot.key, f"{slot.generation}\n{value}", ex=current_app.config["PORTAL_CACHE_SECONDS"]
        )
    except redis.RedisError:
        log.warning("Redis unavailable: portal page not cached")


def store_many(*entries: tuple[Slot | None, str]) -> None:
    """`store` for several values in one round trip."""
    entries = tuple((slot, value) for slot, value in entries if slot is not None)
    if not entries:
        return
    seconds = current_app.config["PORTAL_CACHE_SECONDS"]
    try:
        pipe = redis_client.client.pipeline(transaction=False)
        for slot, value in entries:
            pipe.set(slot.key, f"{slot.generation}\n{value}", ex=seconds)
        pipe.execute()
    except redis.RedisError:
        log.warning("Redis unavailable: portal page not cached")


def invalidate_after_commit() -> None:
    client = redis_client.client

    def bump() -> None:
        try:
            pipe = client.pipeline(transaction=True)
            _start_generation(pipe)  # if absent, then incremented
            pipe.incr(GENERATION_KEY)
            pipe.execute()
        except redis.RedisError:
            # Stale pages then expire by their time-to-live.
            log.warning("Redis unavailable: portal cache not invalidated")

    after_commit(db.session(), bump)
