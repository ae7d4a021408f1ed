"""RpcSession without an event loop: msg_ids, matching by in_reply_to, deadlines, the bound."""

from __future__ import annotations

import pytest
from kernsim.services.runtime.session import RpcSession


def session(max_in_flight: int = 4) -> RpcSession[str]:
    return RpcSession(timeout_s=1.0, max_in_flight=max_in_flight)


def test_msg_ids_count_up_from_one_and_are_never_reused() -> None:
    s = session()
    first = s.start("ping", "a", now=0.0)
    s.finish(first)
    assert [first, s.start("ping", "b", 0.0), s.start("ping", "c", 0.0)] == [1, 2, 3]


def test_a_reply_is_matched_by_in_reply_to_alone_and_only_once() -> None:
    s = session()
    one, two = s.start("ping", "first", 0.0), s.start("ping", "second", 0.0)
    assert s.match(two) == "second"  # out of order: the fault layer reorders
    assert s.match(two) is None  # a duplicate answers nothing
    assert s.match(99) is None
    assert s.match(one) == "first" and s.in_flight == 0


def test_expire_takes_exactly_the_calls_past_their_deadline() -> None:
    s = session()
    s.start("swap_free", "default", now=10.0)  # due at 11.0
    s.start("lock_page", "short", now=10.0, timeout_s=0.25)
    assert s.expire(10.2) == []
    assert s.expire(10.25) == [("short", "lock_page")]
    assert s.in_flight == 1
    assert s.expire(11.0) == [("default", "swap_free")] and s.in_flight == 0


def test_room_counts_down_to_the_bound_and_starting_past_it_is_a_bug() -> None:
    s = session(max_in_flight=2)
    s.start("ping", "a", 0.0)
    assert s.room() == 1
    s.start("ping", "b", 0.0)
    assert s.room() == 0
    with pytest.raises(RuntimeError, match="2 calls already in flight"):
        s.start("ping", "c", 0.0)


def test_fail_all_empties_the_map_and_hands_back_every_waiter() -> None:
    s = session()
    for name in "abc":
        s.start("ping", name, 0.0)
    assert sorted(s.fail_all()) == ["a", "b", "c"]
    assert s.in_flight == 0 and s.room() == 4 and s.expire(99.0) == []


def test_a_session_refuses_bounds_that_could_never_work() -> None:
    with pytest.raises(ValueError):
        RpcSession(timeout_s=0.0, max_in_flight=1)
    with pytest.raises(ValueError):
        RpcSession(timeout_s=1.0, max_in_flight=0)
