"""The panel draw: deterministic, replayable, quota-respecting, order-blind, and always
giving two-thirds of the seats to technical or economic experts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.draw import (
    CORE_SEAT,
    DrawError,
    ExpertCandidate,
    draw_panel,
    draw_replacement,
    is_technical,
    replay,
    required_core_seats,
    satisfies_two_thirds,
    seed_from,
)

SPECIALTIES = ["civil", "electrical", "economic", "legal"]
TECHNICAL = ["civil", "electrical", "economic"]


@st.composite
def pools(draw):
    """Satisfiable cases: everyone has a technical specialty (and maybe `legal` too)."""
    ids = draw(st.lists(st.integers(1, 10_000), min_size=7, max_size=30, unique=True))
    candidates = [
        ExpertCandidate(
            i,
            frozenset(draw(st.sets(st.sampled_from(TECHNICAL), min_size=1, max_size=2)))
            | (frozenset({"legal"}) if draw(st.booleans()) else frozenset()),
        )
        for i in ids
    ]
    size = draw(st.sampled_from([3, 5, 7]))
    counts = {s: sum(s in c.specialties for c in candidates) for s in SPECIALTIES}
    quotas = {}
    seats = size
    for specialty in SPECIALTIES:
        # Disjoint-safe quota: at most one per specialty keeps every case satisfiable.
        if counts[specialty] >= 4 and seats > 0 and draw(st.booleans()):
            quotas[specialty] = 1
            seats -= 1
    seed = draw(st.binary(min_size=32, max_size=32))
    return candidates, size, quotas, seed


@settings(max_examples=60, deadline=None)
@given(pools(), st.randoms(use_true_random=False))
def test_draw_properties(case, shuffler):
    candidates, size, quotas, seed = case
    result = draw_panel(candidates, size, quotas, seed)
    assert result == draw_panel(candidates, size, quotas, seed)
    ids = {c.id for c in candidates}
    assert len(result.members) == size
    assert len(set(result.members)) == size
    assert set(result.members) <= ids
    by_id = {c.id: c for c in candidates}
    for specialty, count in quotas.items():
        assert sum(specialty in by_id[m].specialties for m in result.members) >= count
        assert result.drawn_for.count(specialty) == count
    shuffled = list(candidates)
    shuffler.shuffle(shuffled)
    assert draw_panel(shuffled, size, quotas, seed) == result


@st.composite
def mixed_pools(draw):
    """Any pool: experts with technical specialties, lawyers only, or no specialty."""
    ids = draw(st.lists(st.integers(1, 500), min_size=1, max_size=20, unique=True))
    candidates = [
        ExpertCandidate(i, frozenset(draw(st.sets(st.sampled_from(SPECIALTIES), max_size=2))))
        for i in ids
    ]
    size = draw(st.sampled_from([3, 5, 7, 9]))
    legal = draw(st.integers(0, size - required_core_seats(size)))
    quotas = {"legal": legal} if legal else {}
    if draw(st.booleans()):
        quotas["civil"] = draw(st.integers(0, required_core_seats(size)))
    return candidates, size, quotas, draw(st.binary(min_size=32, max_size=32))


@settings(max_examples=150, deadline=None)
@given(mixed_pools())
def test_two_thirds_rule(case):
    """A drawn panel always has two-thirds (rounded up) of its seats for technical or
    economic experts, counted by seat and by person; without quotas the draw succeeds
    exactly when the pool has enough experts and enough technical or economic ones."""
    candidates, size, quotas, seed = case
    by_id = {c.id: c for c in candidates}
    required = required_core_seats(size)
    try:
        result = draw_panel(candidates, size, quotas, seed)
    except DrawError as error:
        assert error.code in {"too_few", "specialty", "two_thirds_pool"}
        if not quotas:
            technical = sum(is_technical(c) for c in candidates)
            assert len(candidates) < size or technical < required
        return
    assert satisfies_two_thirds(result.members, result.drawn_for, candidates)
    assert sum(is_technical(by_id[m]) for m in result.members) >= required
    assert all(
        seat is None or seat != "legal" or "legal" in by_id[m].specialties
        for m, seat in zip(result.members, result.drawn_for, strict=True)
    )
    if not quotas:
        assert result.drawn_for.count(CORE_SEAT) == required


@settings(max_examples=60, deadline=None)
@given(mixed_pools(), st.lists(st.integers(0, 8), max_size=6))
def test_refills_replay_and_keep_each_seat_kind(case, vacated_seats):
    """Emptying seats one after another and refilling each from the same stream gives what
    `replay` recomputes from the published list; a refilled seat keeps its kind, so the
    panel keeps the two-thirds rule whenever no seat is left vacant."""
    candidates, size, quotas, seed = case
    try:
        result = draw_panel(candidates, size, quotas, seed)
    except DrawError:
        return
    panel: list[int | None] = list(result.members)
    drawn, counter, redraws = set(panel), result.counter, []
    for seat in vacated_seats:
        index = seat % size
        if panel[index] is None:
            continue
        redraws.append({"vacated": panel[index]})
        try:
            new_id, counter = draw_replacement(
                candidates, drawn, result.drawn_for[index], seed, counter
            )
        except DrawError as error:
            assert error.code == "no_replacement"
            panel[index] = None
            continue
        assert new_id not in drawn
        panel[index] = new_id
        drawn.add(new_id)
    published = [{"id": c.id, "specialties": sorted(c.specialties)} for c in candidates]
    replayed = replay(published, size, quotas, seed.hex(), redraws)
    assert replayed["panel"] == panel
    assert replayed["drawn_for"] == list(result.drawn_for)
    if None not in panel:
        assert satisfies_two_thirds(panel, result.drawn_for, candidates)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 31), st.integers(1, 255))
def test_one_seed_byte_changes_the_draw(seed, index, flip):
    # 40 experts, a panel of 7: two independent draws coincide with probability ~1e-11.
    candidates = [ExpertCandidate(i, frozenset({"civil"})) for i in range(1, 41)]
    other = bytearray(seed)
    other[index] ^= flip
    assert draw_panel(candidates, 7, {}, seed) != draw_panel(candidates, 7, {}, bytes(other))


def test_replay_with_redraws_matches_the_draw():
    candidates = [
        ExpertCandidate(i, frozenset({"civil"} if i % 2 else set())) for i in range(1, 12)
    ]
    seed = seed_from("ab" * 32, "2026-11-27T09:00:00+00:00")
    result = draw_panel(candidates, 5, {"civil": 2}, seed)
    declined = result.members[0]
    new_id, _ = draw_replacement(
        candidates, set(result.members), result.drawn_for[0], seed, result.counter
    )
    assert new_id not in result.members
    assert new_id % 2 == 1  # the seat was drawn for the civil quota and keeps it
    published = [{"id": c.id, "specialties": sorted(c.specialties)} for c in candidates]
    replayed = replay(published, 5, {"civil": 2}, seed.hex(), [{"declined": declined}])
    assert replayed["initial"] == list(result.members)
    assert replayed["panel"] == [new_id, *result.members[1:]]


@pytest.mark.parametrize(
    ("size", "quotas", "count", "message"),
    [
        (4, {}, 10, "odd"),
        (5, {"civil": 6}, 10, "quotas ask"),
        (5, {}, 4, "only 4 eligible"),
        (5, {"civil": 1}, 10, "not enough eligible experts in 'civil'"),
        (5, {"legal": 2}, 10, "non-technical specialties"),
        (3, {"legal": 2}, 10, "non-technical specialties"),
        (5, {}, 10, "two-thirds rule needs 4 more technical or economic experts"),
    ],
)
def test_impossible_draws_are_refused(size, quotas, count, message):
    candidates = [ExpertCandidate(i) for i in range(count)]
    with pytest.raises(DrawError, match=message):
        draw_panel(candidates, size, quotas, b"\0" * 32)


def test_the_two_thirds_rule_fills_seats_the_quotas_leave_open():
    # 3 lawyers-only and 4 civil engineers: a panel of 5 needs 4 technical seats; with a
    # legal quota of 1 the three technical seats left must all be civil engineers.
    lawyers = [ExpertCandidate(i, frozenset({"legal"})) for i in range(1, 4)]
    engineers = [ExpertCandidate(i, frozenset({"civil"})) for i in range(10, 14)]
    for n in range(20):
        seed = n.to_bytes(32, "big")
        result = draw_panel(lawyers + engineers, 5, {"legal": 1}, seed)
        assert result.drawn_for == ("legal", CORE_SEAT, CORE_SEAT, CORE_SEAT, CORE_SEAT)
        assert set(result.members[1:]) == {c.id for c in engineers}
    # One engineer short: refused, saying what is missing.
    with pytest.raises(DrawError, match=r"needs 4 more .* only 3 are eligible") as caught:
        draw_panel(lawyers + engineers[:3], 5, {}, b"\1" * 32)
    assert caught.value.code == "two_thirds_pool"
    assert caught.value.params == {"needed": 4, "available": 3, "required": 4}


def test_a_technical_seat_is_refilled_by_a_technical_expert_or_left_vacant():
    lawyers = [ExpertCandidate(i, frozenset({"legal"})) for i in range(1, 4)]
    engineers = [ExpertCandidate(i, frozenset({"civil"})) for i in range(10, 15)]
    seed = b"\2" * 32
    result = draw_panel(lawyers + engineers, 5, {}, seed)
    index = result.drawn_for.index(CORE_SEAT)
    new_id, counter = draw_replacement(
        lawyers + engineers, set(result.members), CORE_SEAT, seed, result.counter
    )
    assert new_id in {c.id for c in engineers} and counter > result.counter
    drawn = set(result.members) | {new_id}
    with pytest.raises(DrawError, match="no eligible expert"):
        draw_replacement(lawyers + engineers, drawn, CORE_SEAT, seed, counter)
    replayed = replay(
        lawyers + engineers,
        5,
        {},
        seed.hex(),
        [{"vacated": result.members[index]}, {"vacated": new_id}],
    )
    assert replayed["panel"][index] is None


def test_cli_replays_a_published_draw(tmp_path, capsys):
    import json

    from evaluation.__main__ import main

    candidates = [ExpertCandidate(i, frozenset({"civil"})) for i in range(1, 10)]
    time = "2026-11-27T09:00:00+00:00"
    seed = seed_from("ab" * 32, time)
    result = draw_panel(candidates, 5, {"civil": 1}, seed)
    published = {
        "size": 5,
        "quotas": {"civil": 1},
        "seed": seed.hex(),
        "seed_inputs": {"merkle_root": "ab" * 32, "draw_time": time},
        "eligible": [{"id": c.id, "specialties": ["civil"]} for c in candidates],
        "redraws": [],
    }
    path = tmp_path / "draw.json"
    path.write_text(json.dumps(published))
    assert main(["draw-replay", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["panel"] == list(result.members) and out["seed_matches_inputs"]
    published["seed_inputs"]["draw_time"] = "2026-11-27T09:00:01+00:00"
    path.write_text(json.dumps(published))
    assert main(["draw-replay", str(path)]) == 1


def test_cli_replays_refills_and_vacancies(tmp_path, capsys):
    import json

    from evaluation.__main__ import main

    lawyers = [ExpertCandidate(i, frozenset({"legal"})) for i in range(1, 4)]
    engineers = [ExpertCandidate(i, frozenset({"civil"})) for i in range(10, 15)]
    time = "2026-11-27T09:00:00+00:00"
    seed = seed_from("cd" * 32, time)
    result = draw_panel(lawyers + engineers, 5, {}, seed)
    index = result.drawn_for.index(CORE_SEAT)
    new_id, _ = draw_replacement(
        lawyers + engineers, set(result.members), CORE_SEAT, seed, result.counter
    )
    published = {
        "size": 5,
        "quotas": {},
        "seed": seed.hex(),
        "seed_inputs": {"merkle_root": "cd" * 32, "draw_time": time},
        "eligible": [
            {"id": c.id, "specialties": sorted(c.specialties)} for c in lawyers + engineers
        ],
        "non_technical": ["legal"],
        "redraws": [
            {"vacated": result.members[index], "cause": "conflict"},
            {"vacated": new_id, "cause": "removed"},
        ],
    }
    path = tmp_path / "draw.json"
    path.write_text(json.dumps(published))
    assert main(["draw-replay", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = list(result.members)
    expected[index] = None
    assert out["panel"] == expected
    # With `legal` counted as technical the draw differs: the rule is part of the replay.
    published["non_technical"] = []
    published["redraws"] = []
    path.write_text(json.dumps(published))
    assert main(["draw-replay", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["initial"] != list(result.members)


@settings(max_examples=60, deadline=None)
@given(
    ids=st.sets(st.integers(min_value=1, max_value=500), min_size=6, max_size=20),
    nonce=st.binary(min_size=32, max_size=32).filter(lambda b: b != bytes(32)),
    declined=st.integers(min_value=0, max_value=4),
    dropped=st.integers(min_value=0, max_value=19),
)
def test_a_commitment_binds_the_eligible_list_and_the_outcome(ids, nonce, declined, dropped):
    """The full draw checks against its own commitment, taken before or after a refill;
    leaving one expert out of the eligible list, or another salt, never does."""
    from evaluation.draw import check_commitment, commitment

    eligible = [{"id": i, "specialties": ["civil"]} for i in sorted(ids)]
    seed = seed_from("ef" * 32, "2026-11-27T09:00:00+00:00")
    result = draw_panel([ExpertCandidate(i, frozenset({"civil"})) for i in ids], 5, {}, seed)
    full = {
        "size": 5,
        "quotas": {},
        "seed": seed.hex(),
        "eligible": eligible,
        "nonce": nonce.hex(),
        "redraws": [{"vacated": result.members[declined]}],
    }
    before, after = commitment(full, 0), commitment(full)
    assert before["outcome_sha256"] != after["outcome_sha256"]
    assert check_commitment(full, before) == [] and check_commitment(full, after) == []
    # The order the eligible list is given in does not matter; its content does.
    assert check_commitment(dict(full, eligible=eligible[::-1]), after) == []
    forged = dict(full, eligible=[e for n, e in enumerate(eligible) if n != dropped % len(ids)])
    try:
        differences = check_commitment(forged, before)
    except DrawError:  # the vacated member is no longer eligible: not a draw at all
        differences = ["unreplayable"]
    assert differences
    assert check_commitment(dict(full, nonce="00" * 32), before)
