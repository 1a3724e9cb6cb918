"""An envelope's request body, read straight from the server's input stream.

`request.stream` is werkzeug's `LimitedStream`, an `io.RawIOBase`: each `read(n)` allocates
a zeroed buffer of n bytes, copies the server's block into it and copies it once more into
the bytes it returns. For a 5 MB envelope read in 1 MiB blocks that is three extra passes
over every byte, paid by every upload of a deadline surge. The server's `wsgi.input`
(gunicorn's body reader, or the test client's) already stops at the end of the body and
returns bytes the blob store can hash and write as they are; `RequestBody` only keeps the
two things `LimitedStream` gave: never past `Content-Length`, and a body that ends before
its `Content-Length` is a disconnected client (`ClientDisconnected`, as from werkzeug), not
a short envelope. A body without a length (chunked, which the server terminates:
`wsgi.input_terminated`) is read to its end; the blob store's size cap stops it one byte
past the limit.
"""

from __future__ import annotations

from typing import BinaryIO

from flask import request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import LimitedStream


class RequestBody:
    """`read(size)` of the request's body, with the server's bytes as they come."""

    def __init__(self, stream: BinaryIO, length: int | None, terminated: bool) -> None:
        self._stream = stream
        # Without a length and without a server that terminates the input: no body (as
        # werkzeug's safe fallback).
        self._remaining = length if length is not None else (-1 if terminated else 0)
        self._exact = length is not None

    def read(self, size: int = -1) -> bytes:
        if self._remaining == 0:
            return b""
        if self._remaining > 0 and (size < 0 or size > self._remaining):
            size = self._remaining
        try:
            data = self._stream.read(size)
        except (OSError, ValueError) as error:
            raise ClientDisconnected() from error
        if not data:
            if self._exact:
                raise ClientDisconnected()
            self._remaining = 0
            return b""
        if self._remaining > 0:
            self._remaining -= len(data)
        return data


def request_body() -> BinaryIO:
    """The current request's body for the blob store: `wsgi.input` without werkzeug's
    copies, unless something has read from werkzeug's wrapper already (it then owns the
    position: it is used as it is)."""
    # The app's input check asks for `request.form` on every request with a body; for an
    # envelope (application/octet-stream) that makes werkzeug's wrapper but reads nothing.
    wrapper = request.__dict__.get("stream")
    if wrapper is not None and not _untouched(wrapper):
        return wrapper
    return RequestBody(
        request.environ["wsgi.input"],
        request.content_length,
        bool(request.environ.get("wsgi.input_terminated")),
    )


def _untouched(wrapper: object) -> bool:
    """Werkzeug's `LimitedStream` at position 0 (an unknown kind of stream: not known to be
    untouched, so the caller keeps it)."""
    return isinstance(wrapper, LimitedStream) and getattr(wrapper, "_pos", None) == 0
