"""Provider files and the files they name cannot hang, exhaust or leak through `validate`.

Each bad input runs `multiport validate` in a child process, bounded in time (and in
address space, so that a regression fails instead of eating the machine); its peak RSS is
read from its resource usage once it has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from multiport.compile import load_providers
from multiport.files import MAX_FILE_BYTES, FileRefused, inside_folder, read_text
from multiport.loader import load_file

from .conftest import ROOT

SECRET = "sk-secret-0123456789abcdef"
_ADDRESS_SPACE = 2 << 30
_TEMPLATES = "  path: /x\n  framing: sse\n"


@dataclass(frozen=True)
class Run:
    """What a child process did: exit code, output, time taken and peak RSS."""

    code: int
    output: str
    seconds: float
    peak_mb: float


# A fresh small process runs the command and reports its peak RSS: a child forked straight
# from pytest would inherit pytest's own high-water mark in `ru_maxrss`.
_LAUNCHER = """
import resource, subprocess, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
code = subprocess.run(sys.argv[3:]).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as report:
    report.write(f"{code} {peak}")
"""


def _run(args: list[str], timeout: float = 10.0) -> Run:
    """Run `args`, killed after `timeout` seconds (then the test fails)."""
    with tempfile.TemporaryDirectory() as scratch:
        report, out = Path(scratch) / "report", Path(scratch) / "out"
        launcher = [sys.executable, "-c", _LAUNCHER, str(report), str(_ADDRESS_SPACE), *args]
        start = time.monotonic()
        with out.open("wb") as sink:
            proc = subprocess.Popen(
                launcher, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        seconds = time.monotonic() - start
        output = out.read_text(errors="replace")
        assert report.exists(), f"{args} did not finish within {timeout} s: {output[:2000]}"
        code, peak = report.read_text().split()
    return Run(int(code), output, seconds, int(peak) / 1024)


def _validate(path: Path, timeout: float = 10.0) -> Run:
    return _run([sys.executable, "-m", "multiport", "validate", str(path)], timeout)


def _provider(folder: Path, body: str, name: str = "p.yaml", port: int = 9000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"port: {port}\nbase_url: http://x\n" + textwrap.dedent(body))
    return path


# --- the provider file itself: aliases, size, depth, interpolation ---

_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_is_refused_at_its_line_quickly_and_in_little_memory(
    tmp_path: Path,
) -> None:
    path = _provider(tmp_path, _BOMB)
    assert len(path.read_bytes()) < 600
    run = _validate(path)
    assert run.code == 1
    assert run.seconds < 5, run
    assert run.peak_mb < 200, run
    # The first anchor whose expansion crosses the bound: `f` (9**6 values).
    assert f"{path}:8:4: error: aliases expand this to over 100,000 values" in run.output


def test_an_alias_of_its_own_anchor_is_refused(tmp_path: Path) -> None:
    loaded = load_file(_provider(tmp_path, "headers: &h {A: *h}\n"), {})
    [problem] = loaded.problems
    assert (problem.line, problem.column) == (3, 10)
    assert "an alias refers to the anchor it is inside" in problem.message


def test_nesting_deeper_than_the_bound_is_refused(tmp_path: Path) -> None:
    loaded = load_file(_provider(tmp_path, "x: " + "[" * 150 + "]" * 150 + "\n"), {})
    [problem] = loaded.problems
    assert "nested deeper than 100 levels" in problem.message


def test_anchors_aliases_and_merges_still_load(tmp_path: Path) -> None:
    _provider(
        tmp_path,
        """\
        headers: &h {A: one, B: two}
        catalog:
          url: http://x/models
          headers:
            <<: *h
            A: three
        mappings:
          - &rule {match: haiku, target: [m1, m2]}
          - {match: sonnet, target: m3}
        """,
    )
    result = load_providers([str(tmp_path)], {})
    assert not result.problems
    spec = result.providers[0].spec
    assert spec.catalog is not None
    assert spec.catalog.headers == {"A": "three", "B": "two"}
    assert spec.headers == {"A": "one", "B": "two"}


def test_a_provider_file_over_the_size_bound_is_not_parsed(tmp_path: Path) -> None:
    path = _provider(tmp_path, "x: |\n" + "  padding\n" * (MAX_FILE_BYTES // 10 + 1))
    [problem] = load_file(path, {}).problems
    assert problem.line == 1
    assert problem.message.startswith("the file is larger than 1,048,576 bytes")


def test_interpolated_values_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "big.env").write_text("BIG=" + "x" * 600_000 + "\n")
    path = _provider(tmp_path, "env_file: big.env\nheaders:\n  A: '" + "${BIG}" * 20 + "'\n")
    [problem] = load_file(path, {}).problems
    assert (problem.line, problem.path) == (5, "$.headers.A")
    assert "`${VAR}` values make this file's text over 8,388,608 characters" in problem.message


def test_a_fifo_among_the_provider_files_is_refused_not_waited_on(tmp_path: Path) -> None:
    _provider(tmp_path, "")
    os.mkfifo(tmp_path / "q.yaml")
    run = _validate(tmp_path, timeout=5)
    assert f"{tmp_path / 'q.yaml'}:1:1: error: the file is not a regular file" in run.output
    assert "ok  p" in run.output


# --- files a provider file names: template files and env_file ---


def test_a_template_path_cannot_climb_out_of_the_folder(tmp_path: Path) -> None:
    path = _provider(
        tmp_path, "wire:\n  dialect: openai-chat\n  request: {file: " + "../" * 12 + "etc/passwd}\n"
    )
    run = _validate(path)
    assert run.code == 1
    assert f"{path}:5:19: error: template file ../../" in run.output
    assert "is outside" in run.output
    assert "root:" not in run.output


@pytest.mark.parametrize("name", ["/etc/passwd", "/dev/zero"])
def test_an_absolute_template_path_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    path = _provider(tmp_path, f"wire:\n  dialect: openai-chat\n  response: {{file: {name}}}\n")
    run = _validate(path)
    assert f"{path}:5:20: error: template file {name} is outside" in run.output
    assert "root:" not in run.output
    assert run.peak_mb < 200


def test_a_symlink_pointing_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.j2").write_text(SECRET)
    path = _provider(
        tmp_path / "providers", "wire:\n  dialect: openai-chat\n  request: {file: link.j2}\n"
    )
    (path.parent / "link.j2").symlink_to(outside / "secret.j2")
    run = _validate(path)
    assert f"{path}:5:19: error: template file link.j2 is outside" in run.output
    assert SECRET not in run.output


def test_template_files_in_a_subfolder_and_links_within_the_folder_load(tmp_path: Path) -> None:
    body = '{"model": {{ model | tojson }}, "messages": []}'
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "request.j2").write_text(body)
    (tmp_path / "link.j2").symlink_to(tmp_path / "templates" / "request.j2")
    _provider(tmp_path, "wire:\n  dialect: openai-chat\n  request: {file: templates/request.j2}\n")
    _provider(
        tmp_path, "wire:\n  dialect: openai-chat\n  request: {file: link.j2}\n", "q.yaml", 9001
    )
    result = load_providers([str(tmp_path)], {})
    assert [p.message for p in result.problems if p.severity == "error"] == []
    assert len(result.providers) == 2


def test_a_fifo_template_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = _provider(tmp_path, "wire:\n  dialect: openai-chat\n  request: {file: request.j2}\n")
    os.mkfifo(tmp_path / "request.j2")
    run = _validate(path, timeout=5)
    assert f"{path}:5:19: error: template file request.j2 is not a regular file" in run.output


def test_a_template_file_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    path = _provider(tmp_path, "wire:\n  dialect: openai-chat\n  request: {file: big.j2}\n")
    with open(tmp_path / "big.j2", "wb") as big:
        big.truncate(64 * MAX_FILE_BYTES)  # sparse: nothing is written
    errors = [p for p in load_providers([str(path)], {}).problems if p.severity == "error"]
    assert [(p.line, p.path) for p in errors] == [(5, "$.wire.request.file")]
    assert errors[0].message.startswith("template file big.j2 is larger than 1,048,576 bytes")


def test_the_env_file_is_not_a_template(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"KEY={SECRET}\n")
    path = _provider(
        tmp_path, "env_file: .env\nwire:\n  dialect: openai-chat\n  request: {file: ./.env}\n"
    )
    run = _validate(path)
    assert f"{path}:6:19: error: template file ./.env is the env_file" in run.output
    assert SECRET not in run.output


def test_an_env_file_outside_the_folder_is_refused_unread(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.env"
    outside.write_text(f"{SECRET} on a line that is not KEY=value\n")
    path = _provider(tmp_path / "providers", f"env_file: {outside}\n")
    run = _validate(path)
    assert f"{path}:3:11: error: env_file {outside} is outside" in run.output
    assert SECRET not in run.output


def test_a_secret_on_a_bad_env_file_line_never_reaches_the_output(tmp_path: Path) -> None:
    (tmp_path / "creds.env").write_text(f"GOOD=1\nAPI {SECRET}\n")
    (tmp_path / "bytes.env").write_bytes(f"KEY={SECRET}\xff\n".encode("latin-1"))
    path = _provider(tmp_path, "env_file: creds.env\n")
    other = _provider(tmp_path, "env_file: bytes.env\n", "q.yaml", 9001)
    run = _validate(tmp_path)
    assert f"{path}:3:11: error: env_file creds.env: line 2 is not a KEY=value line" in run.output
    assert f"{other}:3:11: error: env_file bytes.env is not UTF-8 text (byte 30" in run.output
    assert SECRET not in run.output
    assert "sk-secret" not in run.output


# --- the reader itself ---


def test_a_device_is_refused_before_it_is_read() -> None:
    script = (
        "from pathlib import Path\n"
        "from multiport.files import FileRefused, read_text\n"
        "try:\n    read_text(Path('/dev/zero'))\n"
        "except FileRefused as exc:\n    print('refused:', exc)\n"
    )
    run = _run([sys.executable, "-c", script], timeout=5)
    assert run.output.strip() == "refused: is not a regular file"
    assert run.peak_mb < 200


def test_a_fifo_swapped_in_after_the_check_is_not_waited_on(tmp_path: Path) -> None:
    """Between `os.stat` and `open` a regular file can become a FIFO: opening it must not
    wait for a writer."""
    fifo, regular = tmp_path / "swapped.j2", tmp_path / "regular.j2"
    os.mkfifo(fifo)
    regular.write_text("{}")
    script = (
        "import os, sys\nfrom pathlib import Path\n"
        "from multiport.files import FileRefused, read_text\n"
        "real = os.stat\n"
        "os.stat = lambda p, *a, **k: real(sys.argv[2] if str(p) == sys.argv[1] else p)\n"
        "try:\n    read_text(Path(sys.argv[1]))\n"
        "except FileRefused as exc:\n    print('refused:', exc)\n"
    )
    run = _run([sys.executable, "-c", script, str(fifo), str(regular)], timeout=5)
    assert run.output.strip() == "refused: is not a regular file"


def test_inside_folder_resolves_before_it_checks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert inside_folder(tmp_path, "sub/../a.j2") == tmp_path.resolve() / "a.j2"
    with pytest.raises(FileRefused, match="is outside"):
        inside_folder(tmp_path / "sub", "../a.j2")
    assert read_text(_provider(tmp_path, "")).startswith("port: 9000")
