"""Regexes from provider files run in linear time: none can freeze the process, and what the
linear-time engine cannot run is a `validate` problem at the pattern's line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from multiport.cli import main
from multiport.compile import load_providers
from multiport.mapping import resolve

from .gateway import Gateway
from .upstream_server import free_ports

EVIL = "^(a+)+$"  # backtracks 2**n times on n `a`s and a `b` in Python's `re`
EVIL_MODEL = "a" * 50 + "b"
ROUTE = [sys.executable, "-m", "multiport", "route"]
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):\d+: error: (?P<msg>.+)$")


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def _provider(directory: Path, match: str, port: int = 9400) -> Path:
    return _write(
        directory,
        "evil",
        f"port: {port}\nbase_url: http://127.0.0.1:9/v1\n"
        f"mappings:\n  - match: '{match}'\n    target: somewhere\n",
    )


def _errors(path: Path, capsys: pytest.CaptureFixture[str]) -> list[re.Match[str]]:
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    return [m for m in map(LINE.match, out.splitlines()) if m]


def test_a_backtracking_mapping_neither_hangs_a_request_nor_the_other_ports(
    tmp_path: Path,
) -> None:
    port, other = free_ports(2)
    _provider(tmp_path / "providers.d", EVIL, port)
    _write(
        tmp_path / "providers.d",
        "other",
        f"port: {other}\nbase_url: http://127.0.0.1:9/v1\nmappings:\n  - match: x\n    target: y\n",
    )
    gateway = Gateway([str(tmp_path / "providers.d")], {}, [port, other], tmp_path)
    try:
        body = {
            "model": EVIL_MODEL,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "x"}],
        }
        answers: list[httpx.Response] = []

        def ask() -> None:
            answers.append(httpx.post(f"{gateway.url(port)}/v1/messages", json=body, timeout=5))

        askers = [threading.Thread(target=ask) for _ in range(4)]
        for asker in askers:
            asker.start()
        started = time.monotonic()
        health = httpx.get(f"{gateway.url(other)}/health", timeout=1)
        assert health.status_code == 200
        assert time.monotonic() - started < 1
        for asker in askers:
            asker.join(timeout=5)
        assert [a.status_code for a in answers] == [404] * 4
        assert "it matches no mapping (^(a+)+$)" in answers[0].json()["error"]["message"]
    finally:
        gateway.stop()


def test_route_explains_a_backtracking_mapping_at_once(tmp_path: Path) -> None:
    _provider(tmp_path, EVIL)
    done = subprocess.run(
        [*ROUTE, "evil", EVIL_MODEL, "--dir", str(tmp_path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["rule"] is None
    assert report["reason"] == "no rule matched"


@pytest.mark.parametrize("field", ["when.model", "background_model"])
def test_route_explains_a_backtracking_router_regex_at_once(tmp_path: Path, field: str) -> None:
    _write(tmp_path, "alpha", "port: 9401\nbase_url: http://127.0.0.1:9/v1\n")
    model = f"'{EVIL}'" if field == "when.model" else "x"
    background = f"'{EVIL}'" if field == "background_model" else "haiku"
    _write(
        tmp_path,
        "front",
        f"port: 9402\nrouter:\n  background_model: {background}\n  rules:\n"
        f"    - name: evil\n      when: {{model: {model}}}\n      to: [alpha/one]\n"
        "    - name: default\n      to: [alpha/two]\n",
    )
    done = subprocess.run(
        [*ROUTE, "front", EVIL_MODEL, "--dir", str(tmp_path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rule"] == "default"
    assert report["features"]["background"] is False
    assert [c["candidate"] for c in report["candidates"]] == ["alpha/two"]


@pytest.mark.parametrize(
    ("pattern", "target", "model"),
    [
        (r"^claude-(?P<family>[a-z]+)-(\d+)", r"vendor/\g<family>-\2", "claude-sonnet-4-5"),
        (r"^claude-(?P<family>[a-z]+)-(\d+)", r"\g<0>:\g<2>", "claude-sonnet-4-5"),
        (r"(\w+)-(\d+)", r"\2.\1", "x opus-4"),
        (r"^(a)(b)?", r"x\2y\1", "a"),  # an unmatched group inserts nothing
        (r"^(m)", r"modèle-\1-模型", "m"),  # text around groups stays as written
        (r"^(m)", r"\101\1\\", "m"),  # an octal escape, a literal backslash
        ("^" + "()" * 11 + "(z)", r"\12-\g<12>", "z"),  # two digits: group 12
        (r"^plain", "as-is", "plain-model"),
    ],
)
def test_targets_insert_groups_as_python_does(
    tmp_path: Path, pattern: str, target: str, model: str
) -> None:
    path = _write(
        tmp_path,
        "p",
        "port: 9400\nbase_url: http://127.0.0.1:9/v1\nmappings:\n"
        f"  - match: {json.dumps(pattern)}\n    target: {json.dumps(target)}\n",
    )
    result = load_providers([str(path)], {})
    assert not result.errors, result.problems
    resolved = resolve(model, result.providers[0].rules)
    found = re.search(pattern, model)
    assert found is not None
    assert resolved.target == found.expand(target)
    assert resolved.rule is not None
    assert resolved.rule.targets == (target,)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (r"\g<nope>", "unknown group name 'nope'"),
        (r"\3", "refers to group \\3 but the regex has 1 group(s)"),
        (r"\d", "bad escape \\d"),
    ],
)
def test_a_target_that_cannot_expand_is_a_validate_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, fragment: str
) -> None:
    path = _write(
        tmp_path,
        "p",
        "port: 9400\nbase_url: http://127.0.0.1:9/v1\nmappings:\n"
        f"  - match: '^(x)'\n    target: {json.dumps(target)}\n",
    )
    errors = _errors(path, capsys)
    assert [(int(m["line"]), fragment in m["msg"]) for m in errors] == [(5, True)], errors


@pytest.mark.parametrize(
    ("pattern", "what", "position"),
    [
        ("^claude-(?!haiku)", "a negative lookahead `(?!…)`", 8),
        ("^claude-(?=sonnet)", "a lookahead `(?=…)`", 8),
        ("(?<=claude-)haiku", "a lookbehind `(?<=…)`", 0),
        ("(?<!x-)haiku", "a negative lookbehind `(?<!…)`", 0),
        (r"(a)\1", "a backreference `\\1`", 3),
        ("(?P<n>a)(?P=n)", "a named backreference `(?P=…)`", 8),
        ("(?>a)", "an atomic group `(?>…)`", 0),
        ("a++", "a possessive quantifier `++`", 1),
        ("(?x)a", "the flag `x`", 0),
        (r"a\Z", "`\\Z`", 1),
        ("a{1001}", "a repetition `{1001}`", 1),
    ],
)
def test_what_the_linear_engine_cannot_run_is_reported_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str, what: str, position: int
) -> None:
    path = _write(
        tmp_path,
        "p",
        "port: 9400\nbase_url: http://127.0.0.1:9/v1\nmappings:\n"
        "  - match: haiku\n    target: small\n"
        f"  - match: {json.dumps(pattern)}\n    target: big\n",
    )
    errors = _errors(path, capsys)
    assert len(errors) == 1, errors
    assert int(errors[0]["line"]) == 6
    message = errors[0]["msg"]
    assert message.startswith(f"regex {pattern!r} uses {what} at position {position}, ")
    assert "which multiport's linear-time regex engine does not support; " in message
    assert message.endswith("(at $.mappings[1].match)")


@pytest.mark.parametrize(
    ("yaml", "line", "path"),
    [
        ("options:\n  max_completion_tokens_models: '^o(?!1)'\n", 4, "$.options."),
        ("options:\n  output_limits:\n    '^gpt(?=-4)': 100\n", 5, "$.options.output_limits."),
    ],
)
def test_option_regexes_are_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml: str, line: int, path: str
) -> None:
    file = _write(tmp_path, "p", "port: 9400\nbase_url: http://127.0.0.1:9/v1\n" + yaml)
    errors = _errors(file, capsys)
    assert [(int(m["line"]), "lookahead" in m["msg"], path in m["msg"]) for m in errors] == [
        (line, True, True)
    ]


@pytest.mark.parametrize(
    ("field", "line", "path"),
    [
        ("when.model", 6, "(at $.router.rules[0].when.model)"),
        ("background_model", 3, "(at $.router.background_model)"),
    ],
)
def test_router_regexes_are_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, line: int, path: str
) -> None:
    bad = "'(?=claude)'"
    model = bad if field == "when.model" else "x"
    background = bad if field == "background_model" else "haiku"
    file = _write(
        tmp_path,
        "front",
        f"port: 9402\nrouter:\n  background_model: {background}\n  rules:\n"
        f"    - name: one\n      when: {{model: {model}}}\n      to: [alpha/one]\n",
    )
    errors = _errors(file, capsys)
    assert [(int(m["line"]), m["msg"].endswith(path)) for m in errors] == [(line, True)]
    assert "uses a lookahead `(?=…)` at position 0" in errors[0]["msg"]


def test_a_missing_match_is_the_only_problem_whatever_group_its_target_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "p",
        "port: 9400\nbase_url: http://127.0.0.1:9/v1\nmappings:\n  - target: '\\99'\n",
    )
    errors = _errors(path, capsys)
    assert len(errors) == 1, errors
    assert "match" in errors[0]["msg"]
