"""Upstream URLs as templates: the model in the path, and never out of its segment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from multiport.compile import load_providers
from multiport.errors import InvalidRequest
from multiport.urls import UnsafeUrlValue, compile_url

GEMINI = "/v1beta/models/{{ model }}:generateContent"


def test_the_model_is_encoded_into_its_segment() -> None:
    url, problems = compile_url("https://api.example", GEMINI)
    assert problems == []
    assert url is not None
    assert url.url("gemini-2.5-flash", False) == (
        "https://api.example/v1beta/models/gemini-2.5-flash:generateContent"
    )
    hostile = url.url("x/../../admin?key=1#@evil.example", False)
    assert hostile.startswith("https://api.example/v1beta/models/")
    assert hostile.endswith(":generateContent")
    assert "/../" not in hostile
    assert "?" not in hostile
    assert "#" not in hostile
    assert "@" not in hostile


def test_a_plain_path_is_one_fixed_url() -> None:
    url, _ = compile_url("https://api.example/v1", "/chat/completions")
    assert url is not None
    assert url.fixed == "https://api.example/v1/chat/completions"


def test_streaming_may_use_its_own_path(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(
        "port: 9000\nbase_url: https://api.example\nwire:\n  dialect: openai-chat\n"
        f"  path: {GEMINI}\n"
        "  stream_path: /v1beta/models/{{ model }}:streamGenerateContent?alt=sse\n"
    )
    provider = load_providers([str(tmp_path / "g.yaml")], {}).providers[0]
    assert provider.url_for("m", False) == "https://api.example/v1beta/models/m:generateContent"
    assert provider.url_for("m", True) == (
        "https://api.example/v1beta/models/m:streamGenerateContent?alt=sse"
    )


def test_a_path_template_sees_only_model_and_stream(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(
        "port: 9000\nbase_url: https://api.example\nwire:\n  dialect: openai-chat\n"
        "  path: /deployments/{{ deployment }}/chat\n"
    )
    result = load_providers([str(tmp_path / "g.yaml")], {})
    assert not result.providers
    [problem] = result.errors
    assert problem.path == "$.wire.path"
    assert problem.line == 5
    assert "uses `deployment`, which it cannot see" in problem.message
    assert "model, stream" in problem.message


def test_a_dot_segment_is_refused(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(
        "port: 9000\nbase_url: https://api.example/base\nwire:\n  dialect: openai-chat\n"
        "  path: /deployments/{{ model }}/chat?api={{ model }}\n"
    )
    provider = load_providers([str(tmp_path / "g.yaml")], {}).providers[0]
    for model in ("..", "."):
        with pytest.raises(InvalidRequest, match="cannot be a segment of the upstream URL"):
            provider.url_for(model, False)
    assert provider.url_for("...", False).endswith("/deployments/.../chat?api=...")


def test_model_ids_that_are_paths_keep_their_slashes_with_segments() -> None:
    url, _ = compile_url("https://api.cf", "/accounts/acct/ai/run/{{ model | segments }}")
    assert url is not None
    assert url.url("@cf/meta/llama 3", False) == (
        "https://api.cf/accounts/acct/ai/run/%40cf/meta/llama%203"
    )
    with pytest.raises(UnsafeUrlValue):
        url.url("@cf/../admin", False)


@pytest.mark.parametrize(
    "path",
    ["/m/{{ 9 ** 9 ** 9 }}", "/m/{{ 'a' * 1000000000 }}", "/m/{{ -model }}"],
)
def test_operators_are_refused_in_paths_before_anything_runs(path: str) -> None:
    started = time.monotonic()
    template, problems = compile_url("https://api.example", path)
    assert template is None
    assert "is not allowed here" in problems[0].message
    assert time.monotonic() - started < 1


def test_amplifying_filters_are_unknown_in_paths() -> None:
    template, problems = compile_url("https://api.example", "/m/{{ model | center(999999999) }}")
    assert template is None
    assert "center" in problems[0].message
