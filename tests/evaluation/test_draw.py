"""The panel draw: deterministic, replayable, quota-respecting, order-blind."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.draw import (
    DrawError,
    ExpertCandidate,
    draw_panel,
    draw_replacement,
    replay,
    seed_from,
)

SPECIALTIES = ["civil", "electrical", "economic"]


@st.composite
def pools(draw):
    ids = draw(st.lists(st.integers(1, 10_000), min_size=7, max_size=30, unique=True))
    candidates = [
        ExpertCandidate(i, frozenset(draw(st.sets(st.sampled_from(SPECIALTIES), max_size=2))))
        for i in ids
    ]
    size = draw(st.sampled_from([3, 5, 7]))
    counts = {s: sum(s in c.specialties for c in candidates) for s in SPECIALTIES}
    quotas = {}
    seats = size
    for specialty in SPECIALTIES:
        # Disjoint-safe quota: at most one per specialty keeps every case satisfiable.
        if counts[specialty] >= 3 and seats > 0 and draw(st.booleans()):
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
    shuffled = list(candidates)
    shuffler.shuffle(shuffled)
    assert draw_panel(shuffled, size, quotas, seed) == result


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 31), st.integers(1, 255))
def test_one_seed_byte_changes_the_draw(seed, index, flip):
    # 40 experts, a panel of 7: two independent draws coincide with probability ~1e-11.
    candidates = [ExpertCandidate(i) for i in range(1, 41)]
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
    ],
)
def test_impossible_draws_are_refused(size, quotas, count, message):
    candidates = [ExpertCandidate(i) for i in range(count)]
    with pytest.raises(DrawError, match=message):
        draw_panel(candidates, size, quotas, b"\0" * 32)


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
