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


def test_dotenv_is_read_as_python_dotenv_reads_it(tmp_path: Path) -> None:
    file = tmp_path / "x.env"
    file.write_text(
        "export A=1\n"
        'QUOTED="x" # a comment after a quoted value\n'
        'ESCAPES="line\\none\\ttab \\"quoted\\""\n'
        "SINGLE='no \\n escape'\n"
        'HASH="a # b"\n'
        'LINES="first\nsecond"\n'
        "KEPT=${A}\n"
        "  SPACED = value  \n"
        "BARE\n"
    )
    assert read_dotenv(file) == {
        "A": "1",
        "QUOTED": "x",
        "ESCAPES": 'line\none\ttab "quoted"',
        "SINGLE": "no \\n escape",
        "HASH": "a # b",
        "LINES": "first\nsecond",
        "KEPT": "${A}",
        "SPACED": "value",
    }


def test_unparsable_env_file_line_is_an_error_without_its_text(tmp_path: Path) -> None:
    (tmp_path / "creds.env").write_text("GOOD=1\nnot a line sk-secret-value\n")
    (tmp_path / "p.yaml").write_text("port: 9000\nenv_file: creds.env\nbase_url: http://x\n")
    loaded = load_file(tmp_path / "p.yaml", {})
    [problem] = loaded.problems
    assert (problem.line, problem.path) == (2, "$.env_file")
    assert problem.message.endswith(
        "creds.env: line 2 is not a KEY=value line; fix or remove that line"
    )
    assert "sk-secret" not in problem.message


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
    assert "req.j2:1: access to attribute 'append'" in result.errors[0].message
    assert result.files[0].spec is not None
    from multiport.templates import compile_template

    template, _ = compile_template((tmp_path / "req.j2").read_text(), "req.j2", "request")
    assert template is not None
    with pytest.raises(TemplateRenderError):
        template.render(request={}, options={}, model="m")


def _errors(tmp_path: Path, text: str) -> list[tuple[int, int, str, str]]:
    (tmp_path / "p.yaml").write_text(text)
    result = load_providers([str(tmp_path)], {})
    assert not result.providers
    return sorted((p.line, p.column, p.path, p.message) for p in result.errors)


def test_every_wrong_item_of_lists_and_maps_is_reported(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "port: 9000\nbase_url: http://x\n"
        "headers:\n  A: [1]\n  B: {c: d}\n  1: one\n"
        "catalog:\n  fallback: [a, [b], {c: d}]\n"
        "mappings:\n"
        "  - match: [x]\n    target: y\n"
        "  - just a string\n"
        "  - match: '('\n    target: '\\3'\n",
    )
    assert [(line, column, path) for line, column, path, _ in errors] == [
        (4, 6, "$.headers.A"),
        (5, 6, "$.headers.B"),
        (6, 3, "$.headers.1"),
        (8, 17, "$.catalog.fallback[1]"),
        (8, 22, "$.catalog.fallback[2]"),
        (10, 12, "$.mappings[0].match"),
        (12, 5, "$.mappings[1]"),
        (13, 12, "$.mappings[2].match"),
    ]
    messages = [message for *_, message in errors]
    assert messages[2] == "key `1`: Expected `str`, got `int`"
    assert messages[6].startswith("Expected `object`, got `str`")
    assert messages[7].startswith("invalid regex '(': missing )")


def test_a_wrong_regex_type_does_not_blame_the_target(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path, "port: 9000\nbase_url: http://x\nmappings:\n  - match: [a]\n    target: '\\1'\n"
    )
    assert [(line, path) for line, _, path, _ in errors] == [(4, "$.mappings[0].match")]


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "port: 9000\nbase_url: http://x\n"
        "headers: &h\n  A: one\n  B: two\n"
        "catalog:\n  headers:\n    <<: *h\n    A: three\n"
    )
    result = load_providers([str(tmp_path)], {})
    assert not result.problems
    assert result.providers[0].spec.catalog is not None
    assert result.providers[0].spec.catalog.headers == {"A": "three", "B": "two"}


def test_duplicate_keys_at_any_depth(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "port: 9000\nbase_url: http://x\n"
        "mappings:\n  - {match: a, target: b, match: c}\n"
        "options:\n  join_text: true\n  join_text: false\n",
    )
    assert [
        (line, column, path, message.split(";")[0]) for line, column, path, message in errors
    ] == [
        (4, 27, "$.mappings[0].match", "duplicate key `match`: already given at line 4"),
        (7, 3, "$.options.join_text", "duplicate key `join_text`: already given at line 6"),
    ]


def test_stand_in_ports_clash_with_no_file(tmp_path: Path) -> None:
    """A wrong or missing port is stood in for by one no other file can have."""
    (tmp_path / "a.yaml").write_text("port: eighty\nbase_url: http://x\n")
    (tmp_path / "b.yaml").write_text("base_url: http://x\nhost: [1]\n")
    (tmp_path / "c.yaml").write_text("port: 1\nbase_url: http://x\n")
    result = load_providers([str(tmp_path)], {})
    assert [p.name for p in result.providers] == ["c"]
    assert [(Path(p.file).name, p.line) for p in result.errors] == [
        ("a.yaml", 1),
        ("b.yaml", 1),
        ("b.yaml", 2),
    ]
    a, b, _ = result.files
    assert a.spec is not None
    assert b.spec is not None
    assert a.stand_ins == b.stand_ins == {("port",)}
    assert a.spec.port != b.spec.port
