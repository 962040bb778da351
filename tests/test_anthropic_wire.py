"""Malformed client input is a 400 that says what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

BASE = '{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": %s}]}'


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ((BASE % '"h\\u00e9"').replace("\\u00e9", "\xff").encode("latin-1"), "UTF-8"),
        (
            (
                BASE
                % f'[{{"type": "text", "text": "x", "cache_control": {{"a": {"[" * 1000 + "]" * 1000}}}}}]'
            ).encode(),
            "nested too deeply",
        ),
        ((BASE % '[{"type": "text", "text": 5}]').encode(), "$.messages[0].content[0].text"),
        (
            (BASE % '[{"type": "image", "source": "abc"}]').encode(),
            "$.messages[0].content[0].source",
        ),
        (
            (BASE % '[{"type": "tool_result", "tool_use_id": "t", "content": ["a"]}]').encode(),
            "$.messages[0].content[0].content",
        ),
        (
            (BASE % '"hi"')[:-1].encode()
            + b', "thinking": {"type": "enabled", "budget_tokens": "5"}}',
            "$.thinking.budget_tokens",
        ),
    ],
    ids=[
        "invalid-utf8",
        "deep-nesting",
        "text-not-string",
        "source-string",
        "result-strings",
        "budget-string",
    ],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_malformed_input_is_a_400_naming_what_to_fix(
    client: TestClient[Any], body: bytes, where: str, path: str
) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert where in error["message"]
