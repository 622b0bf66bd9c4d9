"""fingerprint.memo.BoundedMemo: answers as the function does, bounded, thread-safe."""

from __future__ import annotations

import pickle
import threading
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprint.memo import BoundedMemo


def _square(n: int) -> int:
    return n * n


@settings(max_examples=200)
@given(st.lists(st.integers(-50, 50), max_size=200), st.integers(1, 16))
def test_answers_as_the_function_and_stays_bounded(keys: list[int], bound: int) -> None:
    calls: Counter[int] = Counter()

    def compute(n: int) -> int:
        calls[n] += 1
        return _square(n)

    memo = BoundedMemo(bound, compute)
    for key in keys:
        assert memo[key] == key * key
        assert len(memo) <= bound
    if len(set(keys)) <= bound:  # never full: each key computed once
        assert all(count == 1 for count in calls.values())


def test_keep_refuses_keys_and_put_stores_without_compute() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(4, len, keep=lambda text: len(text) <= 3)
    assert memo["abcdef"] == 6 and "abcdef" not in memo  # computed, not kept
    assert memo["ab"] == 2 and "ab" in memo
    plain: BoundedMemo[str, int] = BoundedMemo(2)
    with pytest.raises(KeyError):
        plain["x"]
    assert plain.get("x") is None
    assert plain.put("x", 1) == 1 and plain["x"] == 1
    plain.put("y", 2)
    plain.put("z", 3)  # full: starts over
    assert dict(plain) == {"z": 3}
    with pytest.raises(ValueError, match="at least one"):
        BoundedMemo(0)


def test_pickles_as_an_empty_memo_that_still_computes() -> None:
    memo = BoundedMemo(8, _square)
    assert memo[3] == 9
    copy = pickle.loads(pickle.dumps(memo))
    assert isinstance(copy, BoundedMemo) and len(copy) == 0
    assert copy[4] == 16 and copy.max_entries == 8


def test_threads_get_the_same_answers_and_the_bound_holds() -> None:
    memo = BoundedMemo(32, _square)
    wrong: list[int] = []

    def work(offset: int) -> None:
        for i in range(5_000):
            key = (i * 7 + offset) % 100
            if memo[key] != key * key:
                wrong.append(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong
    assert len(memo) <= 32
