"""Streamed tool-call pieces assembled into calls, as each provider option says."""

from __future__ import annotations

import pytest

from multiport.contracts import ToolCallDelta as Piece
from multiport.errors import UpstreamStreamError
from multiport.options import ToolStreamSpec
from multiport.toolcalls import ToolCallAssembler
from multiport.toolids import ToolNames


def assemble(pieces: list[Piece], **spec: str) -> list[tuple[str, str]]:
    assembler = ToolCallAssembler(ToolStreamSpec(**spec), ToolNames(64))  # type: ignore[arg-type]
    for piece in pieces:
        assembler.feed(piece, 0)
    return [(c.name, c.arguments) for c in assembler.calls]


def test_deltas_are_appended_even_when_they_look_like_a_snapshot() -> None:
    pieces = [
        Piece(index=0, id="a", name="f", arguments='{"q":'),
        Piece(index=0, arguments='{"q":1}}'),
    ]
    assert assemble(pieces) == [("f", '{"q":{"q":1}}')]


def test_snapshots_send_only_the_new_suffix() -> None:
    pieces = [
        Piece(index=0, id="a", name="f", arguments='{"q'),
        Piece(index=0, arguments='{"q": 1'),
        Piece(index=0, arguments='{"q": 1}'),
    ]
    assert assemble(pieces, arguments="snapshots") == [("f", '{"q": 1}')]


def test_a_new_id_with_a_name_on_a_used_index_is_a_new_call_by_default() -> None:
    pieces = [
        Piece(index=0, id="a", name="f", arguments="{}"),
        Piece(index=0, id="a", arguments=""),  # an id repeated (llama.cpp) continues the call
        Piece(index=0, id="b", name="g", arguments="{}"),
    ]
    assert assemble(pieces) == [("f", "{}"), ("g", "{}")]
    assert assemble(pieces, reused_index="same-call") == [("f", "{}{}")]


def test_arguments_before_the_name_are_held_or_refused() -> None:
    pieces = [Piece(index=0, arguments='{"a": 1}'), Piece(index=0, id="c", name="f")]
    assert assemble(pieces) == [("f", '{"a": 1}')]
    with pytest.raises(UpstreamStreamError, match="before the tool's name"):
        assemble(pieces, arguments_before_name="error")


def test_arguments_sent_as_an_object_are_encoded() -> None:
    assert assemble([Piece(complete=True, name="f", arguments={"a": [1]})]) == [("f", '{"a":[1]}')]
