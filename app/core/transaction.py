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


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    # Tie the callback to a transaction even if nothing was written yet, so that a
    # rollback (which is a no-op without one) still cancels it.
    session.connection()
    session.info.setdefault(_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The data is committed; a failed side effect (mail server, Redis down) is logged
            # and can be retried by the user (e.g. "resend confirmation"), never undone.
            log.exception(
                "after-commit callback %r failed", getattr(callback, "__name__", callback)
            )


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(session: Session, previous_transaction) -> None:
    # Only the outermost rollback cancels them: a rolled-back savepoint inside a transaction
    # that then commits must not lose the outer work's side effects.
    if previous_transaction.parent is None:
        session.info.pop(_KEY, None)


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
