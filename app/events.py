"""Live events over Redis pub/sub, published after commit, and the server-sent-event
streams that carry them to browsers. Losing one (Redis down) only delays a live page; the
database stays the record.

Serving a stream (any `text/event-stream` response of the app):
- `stream_response(channel, initial, final=..., finished=...)` builds it: the current state
  first, then what the channel says, until a final event, the end of the ceremony or
  `EVENT_STREAM_SECONDS` (the browser then reconnects and gets the state again). It needs
  no request or app context while streaming, so the request's database session is
  released before the first byte (a watcher never holds a database connection).
- One Redis connection per process (`_Hub`) listens to every `fairbid:*` channel and fans
  messages out to the process's watchers: 1,000 watchers are 1,000 queues, not 1,000
  Redis connections.
- Watchers are cheap only on an asynchronous server: production runs gunicorn's gevent
  worker class (README, "Production stack"); the dev server's threads serve them too.
- `init_app` releases the request's database connection before any stream starts (also
  for a stream written with `stream_with_context`), and caps the concurrent streams per
  client address (`EVENT_STREAMS_PER_ADDRESS`, counted in Redis across workers; a slot
  is a lease of 4 keep-alive intervals renewed while the stream writes, so one left by
  a killed worker or a restart is free again within a minute):
  beyond it, 429 with a plain explanation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from flask import Flask, Response, current_app, request
from flask_babel import gettext as _

from app.core.transaction import after_commit
from app.extensions import db, redis_client

log = logging.getLogger(__name__)
CHANNEL_PREFIX = "fairbid:"
AUDIT_CHANNEL = CHANNEL_PREFIX + "audit"
STREAM_MIMETYPE = "text/event-stream"
RETRY_MS = 3000  # the browser's reconnection delay after a stream ends normally


def publish_after_commit(channel: str, payload: dict[str, Any]) -> None:
    message = json.dumps(payload, sort_keys=True, default=str)
    client = redis_client.client

    def publish() -> None:
        try:
            client.publish(channel, message)
        except redis.RedisError:
            log.warning("Redis unavailable: live event on %s not published", channel)

    after_commit(db.session(), publish)


def publish_now(channel: str, payload: dict[str, Any]) -> None:
    """Live-only news that is not state (e.g. a job's progress inside its transaction)."""
    message = json.dumps(payload, sort_keys=True, default=str)
    try:
        redis_client.client.publish(channel, message)
    except redis.RedisError:
        log.warning("Redis unavailable: live event on %s not published", channel)


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, sort_keys=True, default=str)}\n\n"


# --- one subscription per process ---------------------------------------------------------

_LOST = object()  # the hub lost Redis: streams end with `unavailable`
_QUIET = object()  # nothing arrived within the wait


class Watcher:
    """One stream's mailbox. A watcher that falls `capacity` messages behind (a client
    that does not read) is dropped: its stream ends and the browser reconnects to the
    current state."""

    def __init__(self, hub: _Hub, channel: str, capacity: int = 512) -> None:
        self.hub = hub
        self.channel = channel
        self.inbox: queue.Queue = queue.Queue(maxsize=capacity)
        self.overflowed = False

    def deliver(self, item: object) -> None:
        try:
            self.inbox.put_nowait(item)
        except queue.Full:
            self.overflowed = True

    def next(self, timeout: float) -> object:
        if self.overflowed:
            return _LOST
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return _QUIET

    def close(self) -> None:
        self.hub.forget(self)


class _Hub:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.watchers: dict[str, set[Watcher]] = {}
        self.listening = False

    def watch(self, channel: str) -> Watcher:
        """A mailbox for `channel`, subscribed before this returns (raises RedisError)."""
        with self.lock:
            if not self.listening:
                self._start()
            watcher = Watcher(self, channel)
            self.watchers.setdefault(channel, set()).add(watcher)
            return watcher

    def forget(self, watcher: Watcher) -> None:
        with self.lock:
            watchers = self.watchers.get(watcher.channel)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self.watchers[watcher.channel]

    def _start(self) -> None:
        pubsub = self.client.pubsub()
        try:
            pubsub.psubscribe(CHANNEL_PREFIX + "*")
            deadline = time.monotonic() + 5
            while True:  # confirmed: a message published from now on reaches us
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "psubscribe":
                    break
                if time.monotonic() > deadline:
                    raise redis.ConnectionError("no confirmation of the subscription")
        except BaseException:
            with contextlib.suppress(Exception):
                pubsub.close()
            raise
        self.listening = True
        thread = threading.Thread(target=self._listen, args=(pubsub,), daemon=True)
        thread.name = "fairbid-events"
        thread.start()

    def _listen(self, pubsub) -> None:
        try:
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is None or message["type"] != "pmessage":
                    continue
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode("utf-8", "replace")
                with self.lock:
                    watchers = list(self.watchers.get(channel, ()))
                if not watchers:
                    continue
                event = _encode(message["data"])  # once, for every watcher of the channel
                if event is None:
                    continue
                for watcher in watchers:
                    watcher.deliver(event)
        except Exception as error:  # Redis went away: every stream says so and ends
            log.warning("live events: Redis subscription lost (%s)", type(error).__name__)
        finally:
            with self.lock:
                self.listening = False
                watchers = [w for group in self.watchers.values() for w in group]
                self.watchers.clear()
            for watcher in watchers:
                watcher.deliver(_LOST)
            with contextlib.suppress(Exception):
                pubsub.close()


def _encode(raw: bytes | str) -> tuple[str, bytes] | None:
    """A channel message (a JSON object whose `event` names it) as (name, SSE bytes)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    name = str(data.get("event", "message"))
    return name, sse(name, data).encode("utf-8")


_hubs_lock = threading.Lock()


def _hub() -> _Hub:
    client = redis_client.client
    hubs = current_app.extensions.setdefault("fairbid_event_hubs", {})
    with _hubs_lock:
        hub = hubs.get(id(client))
        if hub is None or hub.client is not client:
            hub = hubs[id(client)] = _Hub(client)
        return hub


# --- the stream ---------------------------------------------------------------------------


Events = list[tuple[str, dict[str, Any]]]


def stream_response(
    channel: str,
    initial: Callable[[], Events],
    *,
    final: Iterable[str] = (),
    finished: Callable[[Events], bool] = lambda events: False,
) -> Response:
    """A server-sent-event response: the events `initial()` returns (the current state),
    then the channel's messages (each a JSON object whose `event` names it) until one of
    `final`, for at most `EVENT_STREAM_SECONDS`. `initial` is called once the channel is
    subscribed, so no change falls between the state and the stream (one may arrive twice:
    pages apply events idempotently). `finished(initial events)`: nothing more will
    happen, send them and end (the page stops listening on its terminal state). Redis
    down: the state, then `unavailable`, and the end."""
    config = current_app.config
    seconds = float(config["EVENT_STREAM_SECONDS"])
    keepalive = float(config["EVENT_STREAM_KEEPALIVE_SECONDS"])
    final = frozenset(final)
    watcher: Watcher | None = None
    with contextlib.suppress(redis.RedisError):  # Redis down: the state, then unavailable
        watcher = _hub().watch(channel)
    try:
        events = initial()
    except BaseException:
        if watcher is not None:
            watcher.close()
        raise
    head = f"retry: {RETRY_MS}\n" + "".join(sse(name, data) for name, data in events)
    if watcher is None:
        head += sse("unavailable", {})
    elif finished(events):
        watcher.close()
        watcher = None

    def generate() -> Iterator[str | bytes]:
        try:
            yield head
            if watcher is None:
                return
            # Spread out: streams opened together must not all reconnect together.
            deadline = time.monotonic() + seconds * random.uniform(0.75, 1.0)  # noqa: S311
            while (left := deadline - time.monotonic()) > 0:
                item = watcher.next(min(keepalive, left))
                if item is _QUIET:
                    yield ": keep-alive\n\n"
                    continue
                if item is _LOST:
                    yield sse("unavailable", {})
                    return
                name, chunk = item
                yield chunk
                if name in final:
                    return
        finally:
            if watcher is not None:
                watcher.close()

    # No stream_with_context: the generator needs no request, so the request's context
    # (and its database session) ends as soon as the view returns.
    response = Response(generate(), mimetype=STREAM_MIMETYPE)
    if watcher is not None:
        response.call_on_close(watcher.close)  # also when refused before it started
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


# --- a cap per client address -------------------------------------------------------------


def _limit_streams(response: Response) -> Response:
    if response.mimetype != STREAM_MIMETYPE:
        return response
    # Any stream, even one built with stream_with_context (whose request context lives as
    # long as it does): end the request's read transaction now, so that its database
    # connection goes back to the pool instead of being held for the stream's minutes.
    # Streams are read-only GETs (what a request writes is committed by its boundary), so
    # ending the transaction writes nothing; commit rather than rollback so that a
    # transaction shared with the caller (the tests' savepoints) keeps what it holds.
    db.session.commit()
    cap = current_app.config.get("EVENT_STREAMS_PER_ADDRESS") or 0
    if response.status_code != 200 or cap <= 0:
        return response
    client = redis_client.client
    key = f"{CHANNEL_PREFIX}streams:{request.remote_addr or '-'}"
    token = secrets.token_hex(8)
    lease = 4 * float(current_app.config["EVENT_STREAM_KEEPALIVE_SECONDS"])
    try:
        count = _take_slot(client, key, token, lease)
    except redis.RedisError:
        return response  # no shared count without Redis; the stream itself says unavailable
    if count > cap:
        with contextlib.suppress(redis.RedisError):
            client.zrem(key, token)
        response.close()
        refusal = Response(
            _(
                "Too many live streams from your address (at most %(cap)d at once). "
                "Close other pages or reload later.",
                cap=cap,
            )
            + "\n",
            status=429,
            mimetype="text/plain",
        )
        refusal.headers["Retry-After"] = "30"
        refusal.headers["Cache-Control"] = "no-store"
        return refusal

    def release() -> None:
        with contextlib.suppress(redis.RedisError):
            client.zrem(key, token)

    response.call_on_close(release)
    response.response = _renewing(response.response, client, key, token, lease)
    return response


def _take_slot(client: redis.Redis, key: str, token: str, lease: float) -> int:
    """Hold (or renew) a slot until now + lease; the number of live slots of the key."""
    now = time.time()
    pipe = client.pipeline()
    pipe.zremrangebyscore(key, "-inf", now)
    pipe.zadd(key, {token: now + lease})
    pipe.zcard(key)
    pipe.expire(key, int(lease) + 1)
    return pipe.execute()[2]


def _renewing(chunks, client: redis.Redis, key: str, token: str, lease: float):
    """The stream's chunks, renewing its slot's lease as it goes (a stream writes at least
    every keep-alive interval): a slot is held while its stream lives, and one left by a
    killed worker or a restart is free again within `lease` seconds."""
    renewed = time.monotonic()
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            if time.monotonic() - renewed > lease / 4:
                renewed = time.monotonic()
                with contextlib.suppress(redis.RedisError):
                    _take_slot(client, key, token, lease)
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def init_app(app: Flask) -> None:
    app.after_request(_limit_streams)
