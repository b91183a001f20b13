"""``loadgen.scaling.share``: N shares together send exactly what one process would."""

from __future__ import annotations

import pytest

from loadgen.scaling.share import Share


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("total", [0, 1, 5, 41, 1000])
def test_parts_add_up_to_the_whole(n: int, total: int) -> None:
    parts = [Share(k, n).part(total) for k in range(n)]
    assert sum(parts) == total and max(parts) - min(parts) <= 1


@pytest.mark.parametrize(("requests", "width", "n"), [(41, 5, 2), (10, 3, 8), (7, 1, 4), (100, 16, 3), (3, 8, 2)])
def test_closed_loop_requests_go_only_to_shares_with_a_slot(requests: int, width: int, n: int) -> None:
    shares = [Share(k, n) for k in range(n)]
    got = [s.closed_requests(requests, width) for s in shares]
    assert sum(got) == requests
    for s, r in zip(shares, got, strict=True):
        assert (s.part(width) == 0) <= (r == 0)  # no slot, no requests


def test_open_loop_arrivals_are_dealt_once_and_indices_never_collide() -> None:
    n = 3
    owners = [[k for k in range(n) if Share(k, n).mine(i)] for i in range(30)]
    assert all(len(o) == 1 for o in owners)
    indices = [Share(k, n).index(j) for k in range(n) for j in range(10)]
    assert sorted(indices) == list(range(30))


def test_shares_compose_across_hosts_and_workers() -> None:
    """Worker w of W in shard K of N is share K + N·w of N·W: together a partition of every index."""
    n, w = 3, 2
    composed = [Share(k, n).split(w, i) for k in range(n) for i in range(w)]
    assert sorted((s.k, s.n) for s in composed) == [(k, n * w) for k in range(n * w)]
    for k in range(n):  # a shard's workers take exactly that shard's arrivals
        mine = {i for i in range(60) if Share(k, n).mine(i)}
        assert mine == {i for i in range(60) for x in range(w) if Share(k, n).split(w, x).mine(i)}


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_refused_with_its_form(text: str) -> None:
    with pytest.raises(ValueError, match="K/N"):
        Share.parse(text)
    assert Share.parse(" 1 / 4 ") == Share(1, 4)
