"""A catalog JSONPath's `=~` filter runs in linear time on what the upstream sends."""

from __future__ import annotations

import time
from pathlib import Path

from multiport.compile import load_providers
from multiport.jsonpaths import parse_jsonpath


def test_a_backtracking_filter_on_upstream_text_ends_at_once() -> None:
    path = parse_jsonpath('$.data[?(@.id =~ "^(a+)+$")]')
    data = {"data": [{"id": "a" * 60 + "b"}, {"id": "aaaa"}]}
    started = time.monotonic()
    found = [m.value["id"] for m in path.find(data)]
    assert time.monotonic() - started < 0.5  # Python's re takes hours here
    assert found == ["aaaa"]


def test_a_filter_pattern_re2_cannot_run_is_a_load_problem(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "port: 9400\nbase_url: http://127.0.0.1:1/v1\ncatalog:\n"
        "  url: /models\n  items: '$.data[?(@.id =~ \"^gpt(?!-3)\")]'\n"
    )
    (problem,) = load_providers([str(tmp_path / "p.yaml")], {}).errors
    assert (problem.line, problem.path) == (5, "$.catalog.items")
    assert "lookahead" in problem.message
