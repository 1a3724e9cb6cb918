"""The panel draw: deterministic, replayable, free of Flask and of the `random` module.

Anyone holding the published seed, the eligible list (ids with their specialties), the size,
the quotas and the list of non-technical specialties can recompute the panel with `replay`.
Randomness is HMAC-SHA256 of the seed over a counter; indices are drawn by rejection
sampling, so there is no modulo bias.

Order: the eligible list is sorted by id first (its given order is irrelevant), then each
specialty quota is filled in sorted specialty order, then the seats the two-thirds rule still
needs are filled from the technical or economic experts not yet drawn (seats marked
`CORE_SEAT`), then the remaining open seats from everyone not yet drawn. A seat emptied later
(a declined invitation, a declared conflict, a removal) is refilled from the same seed with a
higher counter (`draw_replacement`), for the same kind of seat.

The two-thirds rule: at least two-thirds of the seats, rounded up (`required_core_seats`),
go to technical or economic experts. A technical or economic expert is one with at least one
specialty outside `non_technical` (default `NON_TECHNICAL`: only ``legal``), so civil,
structural, electrical, mechanical, IT, medical, environmental and economic experts all
count. A seat counts when it was drawn for a technical or economic quota, for the rule
(`CORE_SEAT`), or as an open seat taken by such an expert; a seat drawn for a non-technical
quota (``legal``) does not count, whoever took it. Quotas for non-technical specialties may
therefore take at most the third left over; the draw checks the rule again once drawn.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Specialties that are neither technical nor economic: they do not count toward two-thirds.
NON_TECHNICAL: frozenset[str] = frozenset({"legal"})
# The `drawn_for` of a seat drawn to satisfy the two-thirds rule (no quota of its own).
CORE_SEAT = "technical_economic"


class DrawError(ValueError):
    """The draw cannot be made as asked (size, quotas, or too few eligible experts).

    `code` names the problem and `params` its numbers, for callers that word it themselves:
    size, duplicate, quota, quotas_too_many, two_thirds_quotas, too_few, specialty,
    two_thirds_pool, two_thirds_broken, no_replacement."""

    def __init__(self, message: str, code: str = "draw", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class ExpertCandidate:
    id: int
    specialties: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DrawResult:
    members: tuple[int, ...]  # in draw order: position 1 is members[0]
    # What each seat was drawn for: a quota's specialty, CORE_SEAT, or None for an open seat.
    drawn_for: tuple[str | None, ...]
    counter: int  # the next unused counter value (a redraw continues from here)


def required_core_seats(size: int) -> int:
    """Two-thirds of the seats, rounded up: 5 -> 4, 3 -> 2, 7 -> 5, 9 -> 6."""
    return -(-2 * size // 3)


def is_technical(
    candidate: ExpertCandidate, non_technical: Collection[str] = NON_TECHNICAL
) -> bool:
    return any(s not in non_technical for s in candidate.specialties)


def seat_counts(
    seat: str | None,
    candidate: ExpertCandidate,
    non_technical: Collection[str] = NON_TECHNICAL,
) -> bool:
    """Whether a seat held by `candidate` counts toward the two-thirds rule."""
    if seat is None:
        return is_technical(candidate, non_technical)
    return seat == CORE_SEAT or seat not in non_technical


def _fits(candidate: ExpertCandidate, seat: str | None, non_technical: Collection[str]) -> bool:
    if seat is None:
        return True
    if seat == CORE_SEAT:
        return is_technical(candidate, non_technical)
    return seat in candidate.specialties


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
            raise DrawError("nothing left to draw from", "too_few")
        space = 1 << 256
        limit = space - space % n  # reject the tail so every index is equally likely
        while True:
            value = self._block()
            if value < limit:
                return value % n


def _check(
    eligible: Sequence[ExpertCandidate],
    size: int,
    quotas: Mapping[str, int],
    non_technical: Collection[str],
) -> None:
    if size < 1 or size % 2 == 0:
        raise DrawError(f"the panel size must be odd and positive, not {size}", "size", size=size)
    ids = [c.id for c in eligible]
    if len(set(ids)) != len(ids):
        raise DrawError("the eligible list names an expert twice", "duplicate")
    if any(n < 0 for n in quotas.values()):
        raise DrawError("a quota cannot be negative", "quota")
    if CORE_SEAT in quotas:
        raise DrawError(f"{CORE_SEAT!r} is not a specialty", "quota")
    seats = sum(quotas.values())
    if seats > size:
        raise DrawError(
            f"the quotas ask for {seats} seats, the panel has {size}",
            "quotas_too_many",
            seats=seats,
            size=size,
        )
    other = sum(n for s, n in quotas.items() if s in non_technical)
    free = size - required_core_seats(size)
    if other > free:
        raise DrawError(
            f"the quotas give {other} seats to non-technical specialties; two-thirds of "
            f"{size} seats ({required_core_seats(size)}) must go to technical or economic "
            f"experts, which leaves {free}",
            "two_thirds_quotas",
            other=other,
            size=size,
            required=required_core_seats(size),
            free=free,
        )
    if len(eligible) < size:
        raise DrawError(
            f"only {len(eligible)} eligible experts for a panel of {size}",
            "too_few",
            eligible=len(eligible),
            size=size,
        )


def satisfies_two_thirds(
    members: Sequence[int | None],
    drawn_for: Sequence[str | None],
    eligible: Sequence[ExpertCandidate],
    non_technical: Collection[str] = NON_TECHNICAL,
) -> bool:
    """Whether the seats held (None: vacant) meet the two-thirds rule for len(members)."""
    by_id = {c.id: c for c in eligible}
    counted = sum(
        member is not None and seat_counts(seat, by_id[member], non_technical)
        for member, seat in zip(members, drawn_for, strict=True)
    )
    return counted >= required_core_seats(len(members))


def draw_panel(
    eligible: Sequence[ExpertCandidate],
    size: int,
    quotas: Mapping[str, int],
    seed: bytes,
    non_technical: Collection[str] = NON_TECHNICAL,
) -> DrawResult:
    _check(eligible, size, quotas, non_technical)
    pool = sorted(eligible, key=lambda c: c.id)
    stream = _Stream(seed)
    members: list[int] = []
    drawn_for: list[str | None] = []
    taken: set[int] = set()

    def take(seat: str | None, choices: list[ExpertCandidate]) -> None:
        chosen = choices[stream.below(len(choices))]
        taken.add(chosen.id)
        members.append(chosen.id)
        drawn_for.append(seat)

    for specialty in sorted(quotas):
        for _ in range(quotas[specialty]):
            choices = [c for c in pool if c.id not in taken and specialty in c.specialties]
            if not choices:
                raise DrawError(
                    f"not enough eligible experts in {specialty!r} for its quota",
                    "specialty",
                    specialty=specialty,
                    quota=quotas[specialty],
                )
            take(specialty, choices)
    counted = sum(n for s, n in quotas.items() if s not in non_technical)
    needed = max(0, required_core_seats(size) - counted)
    left = [c for c in pool if c.id not in taken and is_technical(c, non_technical)]
    if len(left) < needed:
        raise DrawError(
            f"the two-thirds rule needs {needed} more technical or economic experts after "
            f"the quotas, only {len(left)} are eligible",
            "two_thirds_pool",
            needed=needed,
            available=len(left),
            required=required_core_seats(size),
        )
    for _ in range(needed):
        take(CORE_SEAT, [c for c in pool if c.id not in taken and is_technical(c, non_technical)])
    while len(members) < size:
        take(None, [c for c in pool if c.id not in taken])
    if not satisfies_two_thirds(members, drawn_for, pool, non_technical):  # a safety net
        raise DrawError("the drawn panel breaks the two-thirds rule", "two_thirds_broken")
    return DrawResult(tuple(members), tuple(drawn_for), stream.counter)


def draw_replacement(
    eligible: Sequence[ExpertCandidate],
    excluded: set[int] | frozenset[int],
    specialty: str | None,
    seed: bytes,
    counter: int,
    non_technical: Collection[str] = NON_TECHNICAL,
) -> tuple[int, int]:
    """One replacement for an emptied seat: from the eligible experts not in `excluded`
    (everyone already drawn), fit for the seat (its quota's specialty, a technical or
    economic expert for a `CORE_SEAT`, anyone for an open seat). Returns (expert id, next
    counter). Raises DrawError("no_replacement") without using the stream when nobody fits."""
    pool = sorted(eligible, key=lambda c: c.id)
    choices = [c for c in pool if c.id not in excluded and _fits(c, specialty, non_technical)]
    if not choices:
        raise DrawError(
            "no eligible expert is left for the redraw", "no_replacement", seat=specialty
        )
    stream = _Stream(seed, counter)
    chosen = choices[stream.below(len(choices))]
    return chosen.id, stream.counter


def replay(
    eligible: Sequence[Mapping] | Sequence[ExpertCandidate],
    size: int,
    quotas: Mapping[str, int],
    seed_hex: str,
    redraws: Sequence[Mapping] = (),
    non_technical: Collection[str] = NON_TECHNICAL,
) -> dict:
    """Recompute a published draw. `eligible` may be dicts {"id", "specialties"} as in the
    public draw JSON; `redraws` lists {"vacated": id} (or the older {"declined": id}) in the
    order the seats were emptied and a refill was attempted. Returns the initial members,
    what each seat was drawn for, and the final panel (None for a seat left vacant because
    nobody fit)."""
    candidates = [
        c
        if isinstance(c, ExpertCandidate)
        else ExpertCandidate(int(c["id"]), frozenset(c.get("specialties", ())))
        for c in eligible
    ]
    seed = bytes.fromhex(seed_hex)
    result = draw_panel(candidates, size, quotas, seed, non_technical)
    panel: list[int | None] = list(result.members)
    seats = list(result.drawn_for)
    drawn = set(result.members)
    counter = result.counter
    for redraw in redraws:
        index = panel.index(int(redraw["vacated"] if "vacated" in redraw else redraw["declined"]))
        try:
            new_id, counter = draw_replacement(
                candidates, drawn, seats[index], seed, counter, non_technical
            )
        except DrawError:
            panel[index] = None
            continue
        panel[index] = new_id
        drawn.add(new_id)
    return {"initial": list(result.members), "drawn_for": seats, "panel": panel}


def seed_from(merkle_root_hex: str, draw_time_iso: str) -> bytes:
    """The draw seed: SHA-256(Merkle root bytes ‖ draw time as UTF-8 ISO 8601)."""
    return hashlib.sha256(bytes.fromhex(merkle_root_hex) + draw_time_iso.encode()).digest()


# --- the commitment published before the result ---------------------------------------------
#
# Until the award or failure notice the platform publishes only a commitment to the draw: the
# seed (and its public inputs), and salted SHA-256 hashes of the canonical eligible list and
# of the outcome (the replay's initial panel, seats and current panel). The salt (`nonce`,
# random, kept with the draw) is published with the full draw file, so that nobody can
# confirm a guessed eligible list or panel against the hashes before the result, and anyone
# can check afterwards that the full file is the one committed to.

COMMITMENT_RULE = "sha256(bytes.fromhex(nonce) + canonical_json(value)).hexdigest()"
CANONICAL_JSON = 'json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)'


def canonical_json(value: Any) -> bytes:
    """The bytes a commitment hashes: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def committed_sha256(nonce_hex: str, value: Any) -> str:
    return hashlib.sha256(bytes.fromhex(nonce_hex) + canonical_json(value)).hexdigest()


def canonical_eligible(eligible: Sequence[Mapping]) -> list[dict]:
    """The eligible list as committed: by id, each with its sorted specialties."""
    return sorted(
        ({"id": int(c["id"]), "specialties": sorted(c.get("specialties", ()))} for c in eligible),
        key=lambda c: c["id"],
    )


def commitment(full: Mapping, redraw_count: int | None = None) -> dict:
    """The commitment to a full draw document (the file published with the result): its
    seed and the hashes of its eligible list and of its outcome after the first
    `redraw_count` refills (all of them by default)."""
    redraws = list(full.get("redraws", ()))
    if redraw_count is not None:
        if not 0 <= redraw_count <= len(redraws):
            raise DrawError(
                f"the commitment counts {redraw_count} refills; the draw has {len(redraws)}",
                code="redraw_count",
            )
        redraws = redraws[:redraw_count]
    nonce = str(full.get("nonce", ""))
    outcome = replay(
        full["eligible"],
        int(full["size"]),
        full["quotas"],
        full["seed"],
        redraws,
        frozenset(full.get("non_technical", NON_TECHNICAL)),
    )
    return {
        "seed": full["seed"],
        "redraw_count": len(redraws),
        "eligible_sha256": committed_sha256(nonce, canonical_eligible(full["eligible"])),
        "outcome_sha256": committed_sha256(nonce, outcome),
    }


def check_commitment(full: Mapping, earlier: Mapping) -> list[str]:
    """How a commitment published earlier differs from what the full draw file commits to
    (empty: the full file is the one committed to)."""
    recomputed = commitment(full, int(earlier["redraw_count"]))
    return [
        f"{key}: committed {earlier[key]}, the full draw gives {recomputed[key]}"
        for key in ("seed", "eligible_sha256", "outcome_sha256")
        if earlier.get(key) != recomputed[key]
    ]
