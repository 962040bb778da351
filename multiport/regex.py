"""Regexes from provider files, run by RE2: time linear in the text, whatever the pattern.

A pattern is read by Python's parser first, for its messages with a position, then
compiled by RE2; what RE2 cannot run (lookaround, backreferences …) is a config problem
that names the construct and says how to do without it. Mapping targets that insert
groups (`\\1`, `\\g<name>`) are parsed once, with Python's own rules, into pieces.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import re2

__all__ = ["Match", "Regex", "RegexError", "Template", "compile_regex", "compile_template"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is reported as a problem, not logged by RE2 to stderr

_ENGINE = "which multiport's linear-time regex engine does not support"
_WITHOUT = "rewrite it without it"
_NO_BACKTRACKING = "write it as a plain group or quantifier: RE2 never backtracks"
# RE2's word for what it refused → (what that is, how to do without it).
_CONSTRUCTS: dict[str, tuple[str, str]] = {
    "(?=": ("a lookahead `(?=…)`", _WITHOUT),
    "(?!": (
        "a negative lookahead `(?!…)`",
        "rewrite it without it, e.g. with an earlier rule that takes the names to leave out",
    ),
    "(?<=": ("a lookbehind `(?<=…)`", _WITHOUT),
    "(?<!": ("a negative lookbehind `(?<!…)`", _WITHOUT),
    "(?P": ("a named backreference `(?P=…)`", _WITHOUT),
    "(?>": ("an atomic group `(?>…)`", _NO_BACKTRACKING),
    "(?(": ("a conditional group `(?(…)…)`", "write the alternatives with `|`"),
    "(?#": ("a comment `(?#…)`", "remove the comment"),
    "\\Z": ("`\\Z`", "write `$` for the end of the name"),
    "\\u": ("a `\\u` escape", "write the character itself"),
    "\\U": ("a `\\U` escape", "write the character itself"),
    "\\N": ("a `\\N{…}` escape", "write the character itself"),
}
_BACKREFERENCE = re.compile(r"\\[1-9]")
_GROUP_REFERENCE = re.compile(r"invalid group reference (\d+)")


class RegexError(ValueError):
    """A pattern or a target that cannot be used; the message says why and how to fix it."""


class Match(Protocol):
    """A match, as targets read it: a group's text, or None when it took no part."""

    def __getitem__(self, group: int, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Regex:
    """One compiled pattern; `search` finds it anywhere in a text, in linear time."""

    pattern: str
    groups: int
    names: dict[str, int]
    search: Callable[[str], Match | None]


@dataclass(frozen=True, slots=True)
class Template:
    """A target compiled: literal text and the numbers of the groups inserted between."""

    text: str
    pieces: tuple[str | int, ...]

    def expand(self, match: Match) -> str:
        """The target with `match`'s groups in their places (an unmatched group is empty)."""
        if len(self.pieces) == 1 and isinstance(self.pieces[0], str):
            return self.pieces[0]
        return "".join(p if isinstance(p, str) else (match[p] or "") for p in self.pieces)


def compile_regex(pattern: str) -> Regex:
    """`pattern` compiled for RE2; RegexError says what is wrong and how to fix it."""
    try:
        with warnings.catch_warnings():
            # Python warns of sets like `[[:alpha:]]`, which RE2 reads as a POSIX class.
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as exc:
        raise RegexError(
            f"invalid regex {pattern!r}: {exc.msg} at position {exc.pos}; fix the pattern"
        ) from None
    try:
        compiled: Any = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise RegexError(_refused(pattern, exc.args[0])) from None
    return Regex(pattern, compiled.groups, dict(compiled.groupindex), compiled.search)


def _refused(pattern: str, error: bytes | str) -> str:
    """Why RE2 refused a pattern Python accepts, and what to write instead."""
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else error
    kind, _, arg = text.partition(": ")
    what, hint = _CONSTRUCTS.get(arg, (f"`{arg}`", _WITHOUT))
    if _BACKREFERENCE.fullmatch(arg):
        what = f"a backreference `{arg}`"
    elif arg.startswith("(?") and len(arg) == 3 and arg[2].isalpha() and arg not in _CONSTRUCTS:
        what, hint = f"the flag `{arg[2]}`", "remove it (`i`, `m` and `s` are supported)"
    elif kind == "bad repetition operator" and arg.endswith("+"):
        what, hint = f"a possessive quantifier `{arg}`", _NO_BACKTRACKING
    elif kind == "invalid repetition size":
        what, hint = (
            f"a repetition `{arg}`",
            "repeat at most 1000 times in all (nested counts multiply)",
        )
    elif kind.startswith("pattern too large"):
        return f"regex {pattern!r} is too large for multiport's regex engine; shorten it"
    at = pattern.find("(?P=" if arg == "(?P" else arg) if arg else -1  # RE2 stops at `(?P`
    where = f" at position {at}" if at >= 0 else ""
    return f"regex {pattern!r} uses {what}{where}, {_ENGINE}; {hint}"


def compile_template(regex: Regex, target: str) -> Template:
    """`target` parsed once for `regex`: `\\1` … `\\99` and `\\g<name>` insert groups."""
    if "\\" not in target:
        return Template(target, (target,))
    # Python's own expansion does the parsing (escapes, octal, `\g<…>`, errors): each
    # group of a stand-in pattern captures a marker, then the markers become pieces.
    unused = (c for c in map(chr, range(0xE000, 0xF900)) if c not in target)
    open_, close = next(unused), next(unused)
    names = {index: name for name, index in regex.names.items()}
    marks = [f"{open_}{i}{close}" for i in range(regex.groups + 1)]
    groups = (
        f"(?P<{names[i]}>{re.escape(marks[i])})" if i in names else f"({re.escape(marks[i])})"
        for i in range(1, regex.groups + 1)
    )
    stand_in = re.compile(re.escape(marks[0]) + "".join(groups))
    match = stand_in.fullmatch("".join(marks))
    assert match is not None
    try:
        expanded = match.expand(target)
    except re.error as exc:
        raise RegexError(_bad_target(target, exc.msg, regex.groups)) from None
    except IndexError as exc:  # a group name the pattern does not have
        raise RegexError(
            f"target {target!r}: {exc.args[0]}; the regex names {sorted(regex.names) or 'none'}"
        ) from None
    return Template(target, _pieces(expanded, open_, close, regex.groups))


def _bad_target(target: str, message: str, groups: int) -> str:
    number = _GROUP_REFERENCE.fullmatch(message)
    if number is not None:
        return (
            f"target {target!r} refers to group \\{number[1]} but the regex has "
            f"{groups} group(s); add the group to the regex or fix the reference"
        )
    return f"target {target!r}: {message}; write `\\\\` for a backslash"


def _pieces(expanded: str, open_: str, close: str, groups: int) -> tuple[str | int, ...]:
    """Marked text → literal pieces and group numbers; group 0 holds every other marker."""
    parts = re.split(f"{re.escape(open_)}(\\d+){re.escape(close)}", expanded)
    pieces: list[str | int] = []
    skip = 0
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if part:
                pieces.append(part)
        elif skip:
            skip -= 1
        else:
            pieces.append(int(part))
            skip = groups if part == "0" else 0
    return tuple(pieces) or ("",)
