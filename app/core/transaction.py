"""Side effects that must wait for the commit.

Operations never commit; they register what should happen once their data is durable
(send e-mail, publish a Redis event, enqueue a job) with `after_commit`. The callbacks run
only if the surrounding transaction commits, and are dropped on rollback, so no worker,
bidder or live page ever sees something the database does not have.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db

log = logging.getLogger(__name__)
_KEY = "fairbid_after_commit"
_RELEASED_KEY = "fairbid_after_release"  # registered, waiting for the commit
_READY_KEY = "fairbid_after_release_ready"  # committed, waiting for the connection's release
_WROTE_KEY = "fairbid_transaction_wrote"  # the current transaction flushed or ran DML


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, flush_context) -> None:
    session.info[_WROTE_KEY] = True


@event.listens_for(Session, "do_orm_execute")
def _note_dml(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE_KEY] = True


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    # Tie the callback to a transaction even if nothing was written yet, so that a
    # rollback (which is a no-op without one) still cancels it.
    session.connection()
    session.info.setdefault(_KEY, []).append(callback)


def after_commit_released(session: Session, callback: Callable[[], None]) -> None:
    """Like `after_commit`, but the callback runs once the committed transaction has also
    given its connection back to the pool: a callback that opens a transaction of its own
    (`own_session`) then never holds two connections at once. (Holding one while waiting
    for a second is how 300 simultaneous uploads exhausted the pool: every request held
    its connection and waited for another.) It still runs before the request returns."""
    session.connection()
    session.info.setdefault(_RELEASED_KEY, []).append(callback)


def _run(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The data is committed; a failed side effect (mail server, Redis down) is logged
            # and can be retried by the user (e.g. "resend confirmation"), never undone.
            log.exception(
                "after-commit callback %r failed", getattr(callback, "__name__", callback)
            )


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    released = session.info.pop(_RELEASED_KEY, None)
    if released:
        session.info.setdefault(_READY_KEY, []).extend(released)
    _run(session.info.pop(_KEY, []))


@event.listens_for(Session, "after_transaction_end")
def _run_released_callbacks(session: Session, transaction) -> None:
    # The root transaction's end comes after its connections were closed (returned).
    if transaction.parent is None:
        session.info.pop(_WROTE_KEY, None)
    if transaction.parent is None and _READY_KEY in session.info:
        _run(session.info.pop(_READY_KEY))


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(session: Session, previous_transaction) -> None:
    # Only the outermost rollback cancels them: a rolled-back savepoint inside a transaction
    # that then commits must not lose the outer work's side effects.
    if previous_transaction.parent is None:
        session.info.pop(_KEY, None)
        session.info.pop(_RELEASED_KEY, None)


def release_connection() -> bool:
    """End the request's transaction early, keeping what it loaded, so that its database
    connection goes back to the pool during a long wait that needs none (an envelope's
    bytes arriving). Only a transaction that wrote nothing and registered no side effect
    is ended (it has nothing to commit: no pending change, no flush, no ORM DML); otherwise
    nothing happens and False is returned.
    The next query opens a new transaction: what must be current (the deadline, the locks)
    is read again there."""
    session = db.session()
    if not session.in_transaction():
        return True
    if (
        session.new
        or session.dirty
        or session.deleted
        or session.info.get(_WROTE_KEY)
        or session.info.get(_KEY)
        or session.info.get(_RELEASED_KEY)
    ):
        return False
    expire = session.expire_on_commit
    session.expire_on_commit = False  # the loaded user, company and tender stay usable
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    return True


@contextlib.contextmanager
def own_session() -> Iterator[None]:
    """Run the block with `db.session` bound to a new session of its own, then commit it.

    After-commit callbacks and inline jobs need this: the session that just committed may
    emit no more SQL inside SQLAlchemy's after_commit event, and a job should commit its
    own work exactly as it would in a separate worker process.
    """
    registry = db.session.registry
    outer = registry() if registry.has() else None
    session = db.session.session_factory()
    registry.set(session)
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if outer is not None:
            registry.set(outer)
        else:
            registry.clear()
