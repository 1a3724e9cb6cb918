"""The panel draw: deterministic, replayable, free of Flask and of the `random` module.

Anyone holding the published seed, the eligible list (ids with their specialties), the size
and the quotas can recompute the panel with `replay`. Randomness is HMAC-SHA256 of the seed
over a counter; indices are drawn by rejection sampling, so there is no modulo bias.

Order: the eligible list is sorted by id first (its given order is irrelevant), then each
specialty quota is filled in sorted specialty order, then the remaining seats are filled
from everyone not yet drawn. A redraw after a decline continues from the same seed with a
higher counter (`draw_replacement`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class DrawError(ValueError):
    """The draw cannot be made as asked (size, quotas, or too few eligible experts)."""


@dataclass(frozen=True)
class ExpertCandidate:
    id: int
    specialties: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DrawResult:
    members: tuple[int, ...]  # in draw order: position 1 is members[0]
    # Which quota (specialty) each member was drawn for; None for an open seat.
    drawn_for: tuple[str | None, ...]
    counter: int  # the next unused counter value (a redraw continues from here)


class _Stream:
    """Uniform integers from HMAC-SHA256(seed, counter) blocks."""

    def __init__(self, seed: bytes, counter: int = 0):
        self.seed = seed
        self.counter = counter

    def _block(self) -> int:
        digest = hmac.new(self.seed, self.counter.to_bytes(8, "big"), hashlib.sha256).digest()
        self.counter += 1
        return int.from_bytes(digest, "big")

    def below(self, n: int) -> int:
        if n <= 0:
            raise DrawError("nothing left to draw from")
        space = 1 << 256
        limit = space - space % n  # reject the tail so every index is equally likely
        while True:
            value = self._block()
            if value < limit:
                return value % n


def _check(eligible: Sequence[ExpertCandidate], size: int, quotas: Mapping[str, int]) -> None:
    if size < 1 or size % 2 == 0:
        raise DrawError(f"the panel size must be odd and positive, not {size}")
    ids = [c.id for c in eligible]
    if len(set(ids)) != len(ids):
        raise DrawError("the eligible list names an expert twice")
    if any(n < 0 for n in quotas.values()):
        raise DrawError("a quota cannot be negative")
    if sum(quotas.values()) > size:
        raise DrawError(f"the quotas ask for {sum(quotas.values())} seats, the panel has {size}")
    if len(eligible) < size:
        raise DrawError(f"only {len(eligible)} eligible experts for a panel of {size}")


def draw_panel(
    eligible: Sequence[ExpertCandidate],
    size: int,
    quotas: Mapping[str, int],
    seed: bytes,
) -> DrawResult:
    _check(eligible, size, quotas)
    pool = sorted(eligible, key=lambda c: c.id)
    stream = _Stream(seed)
    members: list[int] = []
    drawn_for: list[str | None] = []
    taken: set[int] = set()
    for specialty in sorted(quotas):
        for _ in range(quotas[specialty]):
            choices = [c for c in pool if c.id not in taken and specialty in c.specialties]
            if not choices:
                raise DrawError(f"not enough eligible experts in {specialty!r} for its quota")
            chosen = choices[stream.below(len(choices))]
            taken.add(chosen.id)
            members.append(chosen.id)
            drawn_for.append(specialty)
    while len(members) < size:
        choices = [c for c in pool if c.id not in taken]
        chosen = choices[stream.below(len(choices))]
        taken.add(chosen.id)
        members.append(chosen.id)
        drawn_for.append(None)
    return DrawResult(tuple(members), tuple(drawn_for), stream.counter)


def draw_replacement(
    eligible: Sequence[ExpertCandidate],
    excluded: set[int] | frozenset[int],
    specialty: str | None,
    seed: bytes,
    counter: int,
) -> tuple[int, int]:
    """One replacement for a declined seat: from the eligible experts not in `excluded`
    (everyone already drawn), with the seat's specialty if it was drawn for a quota.
    Returns (expert id, next counter)."""
    pool = sorted(eligible, key=lambda c: c.id)
    choices = [
        c
        for c in pool
        if c.id not in excluded and (specialty is None or specialty in c.specialties)
    ]
    if not choices:
        raise DrawError("no eligible expert is left for the redraw")
    stream = _Stream(seed, counter)
    chosen = choices[stream.below(len(choices))]
    return chosen.id, stream.counter


def replay(
    eligible: Sequence[Mapping] | Sequence[ExpertCandidate],
    size: int,
    quotas: Mapping[str, int],
    seed_hex: str,
    redraws: Sequence[Mapping] = (),
) -> dict:
    """Recompute a published draw. `eligible` may be dicts {"id", "specialties"} as in the
    public draw JSON; `redraws` lists {"declined": id} in the order the declines happened.
    Returns the initial members and the final panel."""
    candidates = [
        c
        if isinstance(c, ExpertCandidate)
        else ExpertCandidate(int(c["id"]), frozenset(c.get("specialties", ())))
        for c in eligible
    ]
    seed = bytes.fromhex(seed_hex)
    result = draw_panel(candidates, size, quotas, seed)
    panel = list(result.members)
    seats = list(result.drawn_for)
    drawn = set(panel)
    counter = result.counter
    for redraw in redraws:
        index = panel.index(int(redraw["declined"]))
        new_id, counter = draw_replacement(candidates, drawn, seats[index], seed, counter)
        panel[index] = new_id
        drawn.add(new_id)
    return {"initial": list(result.members), "panel": panel}


def seed_from(merkle_root_hex: str, draw_time_iso: str) -> bytes:
    """The draw seed: SHA-256(Merkle root bytes ‖ draw time as UTF-8 ISO 8601)."""
    return hashlib.sha256(bytes.fromhex(merkle_root_hex) + draw_time_iso.encode()).digest()
