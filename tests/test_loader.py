"""Loading one provider file: interpolation, env files, defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiport.compile import load_providers
from multiport.envsubst import interpolate, read_dotenv
from multiport.loader import load_file


def test_interpolation_forms() -> None:
    env = {"SET": "value", "EMPTY": ""}
    result = interpolate(
        {
            "a": "${SET}",
            "b": "${UNSET:-fallback}",
            "c": "${EMPTY:-fallback}",
            "d": "${EMPTY-kept}",
            "e": "$${SET}",
            "f": ["x${SET}y"],
        },
        env,
    )
    assert result.data == {
        "a": "value",
        "b": "fallback",
        "c": "fallback",
        "d": "",
        "e": "${SET}",
        "f": ["xvaluey"],
    }
    assert result.missing == {}


def test_missing_variable_is_recorded_with_its_path() -> None:
    result = interpolate({"auth": {"value": "Bearer ${NOPE}"}}, {})
    assert result.missing == {("auth", "value"): ["NOPE"]}
    assert result.data == {"auth": {"value": "Bearer "}}


def test_dotenv(tmp_path: Path) -> None:
    file = tmp_path / "x.env"
    file.write_text("# comment\nexport A=1\nB='two words'\nC=\"q\"\nD=plain # note\n\n")
    assert read_dotenv(file) == {"A": "1", "B": "two words", "C": "q", "D": "plain"}


def test_env_file_supplies_credentials_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "creds.env").write_text("MY_KEY=from-file\nMY_URL=http://file.example\n")
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nenv_file: creds.env\nbase_url: ${MY_URL}\nauth:\n  value: Bearer ${MY_KEY}\n"
    )
    loaded = load_file(tmp_path / "p.yaml", {"MY_URL": "http://env.example"})
    assert loaded.spec is not None
    assert loaded.spec.base_url == "http://env.example"
    assert loaded.spec.auth.value == "Bearer from-file"


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    (tmp_path / "my-provider.yaml").write_text("port: 9000\nbase_url: http://x\n")
    result = load_providers([str(tmp_path)])
    assert [p.name for p in result.providers] == ["my-provider"]
    provider = result.providers[0]
    assert provider.spec.host == "127.0.0.1"
    assert provider.wire.dialect == "openai-chat"
    assert provider.messages_url == "http://x/chat/completions"


def test_missing_credentials_are_known_and_secrets_tracked(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nbase_url: http://x\nauth:\n  value: Bearer ${K}\n"
    )
    missing = load_providers([str(tmp_path)], {}).providers[0]
    assert missing.missing_credentials == ("K",)
    assert "Authorization" not in missing.upstream_headers
    present = load_providers([str(tmp_path)], {"K": "sk-abcdef"}).providers[0]
    assert present.upstream_headers["Authorization"] == "Bearer sk-abcdef"
    assert present.secrets == ("sk-abcdef",)


@pytest.mark.parametrize("target", ["\\1-suffix", "\\g<fam>"])
def test_template_files_next_to_yaml(tmp_path: Path, target: str) -> None:
    (tmp_path / "req.j2").write_text(
        '{"model": {{ model | tojson }}, "n": {{ request.max_tokens }}}'
    )
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nbase_url: http://x\nwire:\n  dialect: openai-chat\n  request: {file: req.j2}\n"
        f"mappings:\n  - match: '(?P<fam>haiku)'\n    target: '{target}'\n"
    )
    result = load_providers([str(tmp_path)])
    assert not result.errors, result.problems
    provider = result.providers[0]
    assert provider.wire.request is not None
    body = provider.wire.request.render_body(request={"max_tokens": 5}, options={}, model="m")
    rendered = json.loads(body)
    assert rendered == {"model": "m", "n": 5}


def test_user_template_files_run_in_the_sandbox(tmp_path: Path) -> None:
    from multiport.errors import TemplateRenderError

    (tmp_path / "req.j2").write_text(
        '{% set l = [] %}{{ l.append(1) }}{"model": {{ model | tojson }}}'
    )
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nbase_url: http://x\nwire:\n  dialect: openai-chat\n  request: {file: req.j2}\n"
    )
    result = load_providers([str(tmp_path)])
    assert result.errors
    assert "failed at line 1" in result.errors[0].message
    assert result.files[0].spec is not None
    from multiport.templates import compile_template

    template, _ = compile_template((tmp_path / "req.j2").read_text(), "req.j2", "request")
    assert template is not None
    with pytest.raises(TemplateRenderError):
        template.render(request={}, options={}, model="m")
