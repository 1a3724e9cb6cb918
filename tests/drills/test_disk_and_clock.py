"""Drills: the blob store's disk full (a real tmpfs of 8 MiB mounted for the drill) and the
deadline's edges (the last byte 1 ms before the deadline is accepted, 1 ms after refused)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from datetime import timedelta

import pytest

from app.bids import operations as bid_ops
from app.core.errors import OperationError
from app.core.types import utcnow
from app.extensions import db
from app.tenders.documents import blob_store
from bidding.receipts import format_timestamp
from tests.drills.server import Gunicorn, bids_of
from tests.factories import rebuild_tender_key
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, registered_bidder, tid, uscc

pytestmark = [pytest.mark.drills, pytest.mark.postgres]


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs (needs root: CAP_SYS_ADMIN), unmounted afterwards."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory, leave: int):
    """Fill the filesystem of `directory` until `leave` bytes are free; returns the filler."""
    stats = os.statvfs(directory)
    filler = directory / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_disk_full_refuses_clearly_without_receipt_and_the_app_keeps_serving(
    app, make_tender, make_user, small_disk, tmp_path
):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    headers = token_for(bidder)
    envelope = lib_seal(
        rebuild_tender_key(tender).public_key(),
        tid(tender),
        uscc(bidder),
        technical=os.urandom(3_000_000),
    )
    blobs = small_disk / "blobs"
    server = Gunicorn(app, tmp_path / "gunicorn.log", env={"FAIRBID_BLOB_DIR": str(blobs)})
    server.start()
    try:
        filler = fill(small_disk, leave=1_000_000)
        octets = {**headers, "Content-Type": "application/octet-stream"}
        path = f"/api/v1/tenders/{tender.id}/bids"
        status, body = server.json("POST", path, envelope, octets)
        assert (status, body["error"]) == (507, "storage_full"), body
        assert "no receipt" in body["message"]
        assert bids_of(tender) == []
        assert list((blobs / "tmp").iterdir()) == []  # the partial file was removed

        # A resumable chunk that does not fit: refused, the offset stays where it was.
        status, state = server.json(
            "POST", f"/api/v1/tenders/{tender.id}/uploads", {"size": len(envelope)}, headers
        )
        assert status == 201, state
        chunk = {**headers, "Content-Range": f"bytes 0-1999999/{len(envelope)}"}
        status, body = server.json("PUT", state["url"], envelope[:2_000_000], chunk)
        assert (status, body["error"]) == (507, "storage_full"), body
        assert server.json("GET", state["url"], None, headers)[1]["offset"] == 0

        # The app keeps serving while the disk is full.
        assert server.request("GET", "/healthz")[0] == 200
        assert server.json("GET", f"/api/v1/tenders/{tender.id}/bids/mine", None, headers) == (
            200,
            {"bids": []},
        )
        assert server.request("GET", "/")[0] == 200

        # Space is back: the same upload resumes and completes (completing it needs room for
        # the envelope twice: its session file is copied into the blob store).
        filler.unlink()
        status, body = server.json("PUT", state["url"], envelope[:2_000_000], chunk)
        assert (status, body["offset"]) == (200, 2_000_000), body
        rest = {**headers, "Content-Range": f"bytes 2000000-{len(envelope) - 1}/{len(envelope)}"}
        status, body = server.json("PUT", state["url"], envelope[2_000_000:], rest)
        assert status == 200 and body["complete"], body
        assert len(bids_of(tender)) == 1
    finally:
        server.stop()


class LastByteAt(io.BytesIO):
    """An upload whose last byte arrives at `moment` of the drill's clock."""

    def __init__(self, data: bytes, clock: dict, moment):
        super().__init__(data)
        self.clock, self.moment = clock, moment

    def read(self, size=-1):
        block = super().read(size)
        if not block:  # end of the stream: the last byte has arrived
            self.clock["now"] = self.moment
        return block


@pytest.fixture
def clock(monkeypatch):
    """The server clock of the submission path, held still and moved by the drill."""
    state = {"now": utcnow()}
    monkeypatch.setattr(bid_ops, "utcnow", lambda: state["now"])
    return state


@pytest.mark.parametrize(
    ("offset_ms", "accepted"), [(-1, True), (1, False)], ids=["1ms-before", "1ms-after"]
)
def test_deadline_edges_to_the_millisecond(app, make_tender, make_user, clock, offset_ms, accepted):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    envelope = lib_seal(rebuild_tender_key(tender).public_key(), tid(tender), uscc(bidder))
    deadline = tender.submission_deadline
    clock["now"] = deadline - timedelta(seconds=10)  # the upload starts in time
    last_byte = deadline + timedelta(milliseconds=offset_ms)

    if accepted:
        bid = bid_ops.submit_envelope(bidder, tender, LastByteAt(envelope, clock, last_byte))
        db.session.commit()
        assert bid.received_at == last_byte
        receipt = bid_ops.bid_data(bid)["receipt"]["receipt"]
        assert receipt["received_at"] == format_timestamp(last_byte)
    else:
        with pytest.raises(OperationError) as refused:
            bid_ops.submit_envelope(bidder, tender, LastByteAt(envelope, clock, last_byte))
        db.session.rollback()
        assert refused.value.code == "deadline_passed"
        assert bids_of(tender) == []
        assert not blob_store().exists(hashlib.sha256(envelope).hexdigest())


@pytest.mark.parametrize(
    ("offset_ms", "accepted"), [(-1, True), (1, False)], ids=["1ms-before", "1ms-after"]
)
def test_deadline_edges_of_the_last_resumable_chunk(
    app, make_tender, make_user, clock, offset_ms, accepted
):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    envelope = lib_seal(rebuild_tender_key(tender).public_key(), tid(tender), uscc(bidder))
    deadline = tender.submission_deadline
    clock["now"] = deadline - timedelta(minutes=5)
    upload = bid_ops.start_upload(bidder, tender, len(envelope))
    db.session.commit()
    half = len(envelope) // 2
    bid_ops.append_chunk(
        bidder, upload, f"bytes 0-{half - 1}/{len(envelope)}", io.BytesIO(envelope[:half])
    )
    db.session.commit()
    clock["now"] = deadline - timedelta(seconds=2)
    last_byte = deadline + timedelta(milliseconds=offset_ms)
    last = LastByteAt(envelope[half:], clock, last_byte)
    content_range = f"bytes {half}-{len(envelope) - 1}/{len(envelope)}"
    if accepted:
        progress = bid_ops.append_chunk(bidder, upload, content_range, last)
        db.session.commit()
        assert progress.bid.received_at == last_byte
    else:
        with pytest.raises(OperationError) as refused:
            bid_ops.append_chunk(bidder, upload, content_range, last)
        db.session.rollback()
        assert refused.value.code == "deadline_passed"
        assert bids_of(tender) == []
    assert len(bids_of(tender)) == (1 if accepted else 0)
