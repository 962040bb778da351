"""Tool ids and names."""

from __future__ import annotations

import re

from multiport.toolids import ToolIds, ToolNames


class _CountingSet(set[str]):
    probes = 0

    def __contains__(self, item: object) -> bool:
        type(self).probes += 1
        return super().__contains__(item)


def test_claiming_repeated_ids_takes_linear_time() -> None:
    ids = ToolIds()
    counting = _CountingSet()
    ids._seen = counting  # count every membership probe
    n = 5_000
    claimed = [ids.claim("same") for _ in range(n)] + [ids.claim(f"same_{k}") for k in range(2, 50)]
    assert len(set(claimed)) == len(claimed)
    assert _CountingSet.probes <= 4 * len(claimed)


def test_ids_are_made_valid() -> None:
    ids = ToolIds()
    assert ids.claim("call.1:x") == "call_1_x"
    assert ids.claim("call.1:x") == "call_1_x_2"
    assert re.fullmatch(r"toolu_[0-9a-f]+", ids.claim(""))


def test_long_names_are_shortened_and_restored() -> None:
    names = ToolNames(64)
    long_name = "mcp__server__" + "x" * 80
    short = names.upstream(long_name)
    assert len(short) <= 64
    assert names.upstream(long_name) == short
    assert names.client(short) == long_name
    assert names.client("Read") == "Read"
