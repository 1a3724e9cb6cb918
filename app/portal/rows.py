"""Rendered rows of the announcement list, kept per worker (issue 18: a search that missed
the page cache mostly shows rows other searches rendered already; rendering them was the
largest part of a missed page).

A row is stored under everything it shows: the listed tender's own values (id, reference,
title, centre name, category, status, the two moments), the language (labels and dates),
the time zone the moments are written in, the script root (the row's link) and the row
template itself. A changed tender is a new key, so a stale row can never be shown; the old
entry ages out of the LRU. Rows are rendered from the key alone (`render` gets the key),
so nothing outside it can reach the cached HTML.

Per worker, not in Redis: a hit is a dictionary lookup instead of a round trip and twenty
values to decode; content keys need no invalidation between workers; each worker renders
each row once. Bounded by `PORTAL_ROW_CACHE_SIZE` entries (~1.5 kB each).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from markupsafe import Markup


class RowCache:
    """A bounded LRU of rendered rows (Markup), by content key."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._rows: OrderedDict[Hashable, Markup] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, keys: Sequence[Hashable], render: Callable[[Hashable], str]) -> list[Markup]:
        """The row of each key, rendered by `render(key)` where not cached yet."""
        rows = self._rows
        with self._lock:
            found = [rows.get(key) for key in keys]
            for key, row in zip(keys, found, strict=True):
                if row is not None:
                    rows.move_to_end(key)
        for index, key in enumerate(keys):
            if found[index] is None:
                # Our own autoescaped template output.
                found[index] = row = Markup(render(key))  # noqa: S704
                self._store(key, row)
        return found  # type: ignore[return-value]

    def _store(self, key: Hashable, row: Markup) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
