"""`multiport validate`: every broken provider file gets file, line and a fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from multiport.cli import main
from multiport.compile import load_providers

from .conftest import DATA, PROVIDERS_DIR

INVALID = DATA / "invalid"

# file → (line, a fragment of the message that says what is wrong)
EXPECTED: dict[str, tuple[int, str]] = {
    "bad-yaml.yaml": (3, "expected ',' or ']'"),
    "bad-indent.yaml": (2, "YAML syntax error: mapping values are not allowed"),
    "not-a-mapping.yaml": (1, "must be a YAML mapping"),
    "empty-file.yaml": (1, "must be a YAML mapping"),
    "unknown-key.yaml": (3, "unknown key `catalgo`: did you mean `catalog`?"),
    "unknown-nested-key.yaml": (5, "unknown key `targte`: did you mean `target`?"),
    "wrong-type-port.yaml": (1, "Expected `int`, got `str`"),
    "port-zero.yaml": (1, "Expected `int` >= 1"),
    "port-70000.yaml": (1, "Expected `int` <= 65535"),
    "missing-base-url.yaml": (1, "missing required key `base_url`"),
    "missing-port.yaml": (1, "missing required key `port`"),
    "bad-scheme.yaml": (2, "base_url must be an http:// or https:// URL, got 'ftp://example.com'"),
    "empty-base-url.yaml": (2, "set MULTIPORT_TEST_UNSET_URL or give a default"),
    "bad-regex.yaml": (4, "invalid regex '^claude-(haiku': missing )"),
    "bad-group-ref.yaml": (5, "refers to group \\2 but the regex has 1 group(s)"),
    "bad-jsonpath.yaml": (4, "invalid JSONPath '$.data[*'"),
    "bad-jsonpath-field.yaml": (5, "invalid JSONPath 'name[['"),
    "template-syntax.yaml": (6, "template syntax error: unexpected '}'"),
    "template-invalid-json.yaml": (5, "rendered invalid JSON"),
    "template-dunder.yaml": (6, "template reaches for `__class__`"),
    "template-env.yaml": (6, "template uses `environ`, which it cannot see"),
    "template-getitem-dunder.yaml": (6, "template reaches for `__init__`"),
    "template-not-object.yaml": (
        5,
        "rendered an invalid request body: Expected `object`, got `array`",
    ),
    # A literal key no contract has, in any branch, found without rendering.
    "stream-template-typo.yaml": (8, "template writes the key `stop_reasn`, which no field"),
    "response-template-typo.yaml": (8, "template writes the key `usgae`, which no field"),
    "custom-wire-without-framing.yaml": (4, "wire needs `framing: sse` or `framing: ndjson`"),
    # A value the template cannot read, in the file's own samples.
    "response-typo-found-by-own-samples.yaml": (
        7,
        "response-typo-found-by-own-samples.yaml:8: 'dict object' has no attribute 'txt' "
        "(sample upstream wire.samples.response[0])",
    ),
    # A key built in an expression, found by rendering the sample answers.
    "stream-key-built-in-an-expression.yaml": (
        5,
        "template stream-key-built-in-an-expression:stream rendered an invalid stream event: "
        "Object contains unknown field `input_tokns` - at `$.usage`",
    ),
    "template-file-missing.yaml": (6, "template file"),
    "template-render-error.yaml": (5, "template-render-error.yaml:6: division by zero"),
    "unknown-dialect.yaml": (4, "unknown dialect 'openai-chatt'; built-in dialects: anthropic"),
    "no-templates.yaml": (4, "wire needs a request template"),
    "bad-framing.yaml": (5, "Invalid enum value 'websocket'"),
    "bad-option-value.yaml": (4, "Invalid enum value 'sometimes'"),
    "bad-option-regex.yaml": (4, "invalid regex '(o1'"),
    "bad-name.yaml": (1, "Expected `str` matching regex"),
    "bad-catalog-url.yaml": (4, "catalog.url must be an http:// or https:// URL"),
    "negative-timeout.yaml": (4, "Expected `float` > 0.0"),
    "target-wrong-type.yaml": (5, "Expected `str | array`, got `object`"),
    "missing-env-file.yaml": (1, "env_file"),
    "headers-not-strings.yaml": (4, "Expected `str | null`, got `array`"),
    "duplicate-key.yaml": (3, "duplicate key `port`: already given at line 1"),
    "missing-key-among-others.yaml": (1, "missing required key `base_url`"),
    "many-problems.yaml": (18, "invalid regex '^claude-(': missing )"),
}

LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.+)$"
)


def test_every_invalid_file_has_an_expectation() -> None:
    files = sorted(p.name for p in INVALID.glob("*.yaml"))
    assert len(files) >= 30
    assert files == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_file_names_file_line_and_fix(
    name: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["validate", str(INVALID / name)])
    out = capsys.readouterr().out
    assert status == 1
    errors = [m for m in map(LINE.match, out.splitlines()) if m and m["sev"] == "error"]
    assert errors, out
    line, fragment = EXPECTED[name]
    matching = [m for m in errors if fragment in m["msg"]]
    assert matching, f"{fragment!r} not in {out}"
    assert matching[0]["file"].endswith(name) or matching[0]["file"].endswith(".j2")
    assert int(matching[0]["line"]) == line


def test_shipped_providers_are_valid(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["validate", str(PROVIDERS_DIR)])
    out = capsys.readouterr().out
    assert status == 0, out
    ports = {}
    for match in re.finditer(r"^ok\s+(\S+)\s+port (\d+)\s+dialect (\S+)", out, re.M):
        ports[match[1]] = (int(match[2]), match[3])
    assert ports["github-models"] == (8092, "openai-chat")
    assert ports["anthropic"] == (8091, "anthropic")
    assert ports["ollama"] == (8095, "ollama-chat")
    expected = {"openai", "openrouter", "llamacpp", "deepseek", "groq", "gemini"}
    assert expected <= set(ports)
    assert len({port for port, _ in ports.values()}) == len(ports)
    shipped = len(list(PROVIDERS_DIR.glob("*.yaml")))
    assert f"{shipped} valid provider(s), 0 error(s)" in out


def test_unset_credentials_warn_and_fail_only_when_strict(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = str(PROVIDERS_DIR / "openai.yaml")
    assert main(["validate", target]) == 0
    assert "warning: environment variable OPENAI_API_KEY is not set" in capsys.readouterr().out
    assert main(["validate", "--strict", target]) == 1
    assert "error: environment variable OPENAI_API_KEY is not set" in capsys.readouterr().out
    clean_env.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    assert main(["validate", "--strict", target]) == 0
    assert "sk-test-secret-value" not in capsys.readouterr().out


def test_duplicate_ports_and_names_across_files(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", str(DATA / "duplicates")])
    out = capsys.readouterr().out
    assert status == 1
    assert re.search(r"second\.yaml:1:7: error: port 9100 is already used by .*first\.yaml", out)
    assert re.search(r"third\.yaml:1:7: error: provider name `first` is already used", out)


def test_all_problems_reported_in_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", str(INVALID)])
    out = capsys.readouterr().out
    assert status == 1
    reported = {Path(m["file"]).name for m in map(LINE.match, out.splitlines()) if m}
    assert {"bad-regex.yaml", "unknown-key.yaml", "port-zero.yaml"} <= reported
    assert len(reported) >= 30


def _errors(out: str, name: str) -> list[tuple[int, int, str]]:
    found = [m for m in map(LINE.match, out.splitlines()) if m and m["sev"] == "error"]
    return [(int(m["line"]), int(m["col"]), m["msg"]) for m in found if m["file"].endswith(name)]


def test_every_problem_of_a_file_in_one_run(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seven wrong types, an unknown key, a bad regex and a duplicate key: ten errors."""
    status = main(["validate", str(INVALID / "many-problems.yaml")])
    out = capsys.readouterr().out
    assert status == 1
    expected = [
        (1, 7, "Expected `int`, got `str`; port: "),
        (5, 16, "Expected `bool`, got `str`; passthrough: "),
        (7, 9, "Expected `float` > 0.0; read: "),
        (9, 12, "Expected `float`, got `str`; refresh: "),
        (10, 3, "unknown key `fallbak`: did you mean `fallback`?"),
        (12, 14, "Invalid enum value 'loud'; reasoning: "),
        (13, 18, "Expected `int` >= 8; tool_name_max: "),
        (14, 14, "Expected `bool`, got `str`; send_user: "),
        (18, 12, "invalid regex '^claude-(': missing ), unterminated subpattern"),
        (20, 1, "duplicate key `host`: already given at line 3; keep one"),
    ]
    errors = sorted(_errors(out, "many-problems.yaml"))  # the regex is checked after decoding
    assert [(line, col) for line, col, _ in errors] == [(line, col) for line, col, _ in expected]
    for (_, _, message), (_, _, fragment) in zip(errors, expected, strict=True):
        assert message.startswith(fragment), (message, fragment)
    assert "0 valid provider(s), 10 error(s)" in out


def test_missing_key_is_reported_next_to_wrong_types(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(INVALID / "missing-key-among-others.yaml")]) == 1
    errors = _errors(capsys.readouterr().out, "missing-key-among-others.yaml")
    assert [(line, message.split(":")[0]) for line, _, message in errors] == [
        (1, "missing required key `base_url`"),
        (2, "Expected `str`, got `array`; host"),
        (4, "Expected `bool`, got `str`; join_text"),
    ]


def test_duplicate_key_names_the_first_line(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(INVALID / "duplicate-key.yaml")]) == 1
    out = capsys.readouterr().out
    assert _errors(out, "duplicate-key.yaml") == [
        (
            3,
            1,
            "duplicate key `port`: already given at line 1; keep one "
            "(YAML would silently use the last) (at $.port)",
        )
    ]
    assert "0 valid provider(s)" in out


def test_several_unknown_keys_in_one_file(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("port: 9000\nbase_url: http://x\nhots: a\noptions:\n  join_txt: true\n")
    result = load_providers([str(file)])
    messages = [(p.line, p.message) for p in result.errors]
    assert (3, "unknown key `hots`: did you mean `host`?") in messages
    assert (5, "unknown key `join_txt`: did you mean `join_text`?") in messages


def test_json_format(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", "--format", "json", str(INVALID / "bad-regex.yaml")])
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["valid"] is False
    problem = report["problems"][0]
    assert problem["line"] == 4
    assert problem["path"] == "$.mappings[0].match"
    assert problem["file"].endswith("bad-regex.yaml")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--format", "xml"])
    assert exc.value.code == 2


def test_missing_path_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [[], ["validate"], ["schema"], ["serve"], ["models"], ["route"]]
)
def test_help_has_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out
    assert "multiport" in out
