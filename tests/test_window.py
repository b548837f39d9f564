"""The sliding-window schedule: bottom-up, fixed loop, full coverage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankstack.errors import RankstackError
from rankstack.rerankers.window import apply_window, sliding_rerank, window_schedule


def test_k100_w20_s10_gives_nine_windows_bottom_up():
    sched = window_schedule(100, 20, 10)
    assert sched == [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60), (30, 50), (20, 40), (10, 30), (0, 20)]


def test_k95_covers_every_position_with_a_clamped_last_window():
    sched = window_schedule(95, 20, 10)
    assert sched[0] == (75, 95) and sched[-1] == (0, 15)
    assert len(sched) == 9
    covered = {i for s, e in sched for i in range(s, e)}
    assert covered == set(range(95))
    assert len(set(sched)) == len(sched)  # no window repeated


def test_k_below_window_is_one_window():
    assert window_schedule(7, 20, 10) == [(0, 7)]
    assert window_schedule(20, 20, 10) == [(0, 20)]
    assert window_schedule(0, 20, 10) == []


def test_bad_window_or_step_is_a_clear_error():
    with pytest.raises(RankstackError, match="step"):
        window_schedule(100, 10, 20)
    with pytest.raises(RankstackError, match="step"):
        window_schedule(100, 10, 0)
    with pytest.raises(RankstackError, match="window"):
        window_schedule(100, 1, 1)


@given(k=st.integers(0, 300), w=st.integers(2, 40), s=st.integers(1, 40))
def test_any_schedule_covers_all_positions_and_ends_at_top(k, w, s):
    if s > w:
        return
    sched = window_schedule(k, w, s)
    assert {i for a, b in sched for i in range(a, b)} == set(range(k))
    if k:
        assert sched[-1][0] == 0 and sched[0][1] == k
        assert all(0 < b - a <= w for a, b in sched)
        assert all(b1 - b2 == s for (_, b1), (_, b2) in zip(sched, sched[1:]))


def test_bubble_up_moves_the_last_item_to_the_top():
    """A perfect window ranker carries the best item from the bottom to rank 1 in one pass."""
    items = list(range(100))  # larger = better, worst first
    out = sliding_rerank(items, lambda win: sorted(range(len(win)), key=lambda i: -win[i]), 20, 10)
    assert out[0] == 99
    assert out[:10] == list(range(99, 89, -1))


def test_apply_window_rejects_a_non_permutation():
    with pytest.raises(ValueError):
        apply_window([1, 2, 3], 0, 3, [0, 0, 1])
    assert apply_window([1, 2, 3, 4], 1, 3, [1, 0]) == [1, 3, 2, 4]
