"""Tool calls paired with their results, turn by turn."""

from __future__ import annotations

from multiport.pairing import NO_RESULT, CallLedger


def test_a_result_answers_only_a_waiting_call_of_the_last_assistant_turn() -> None:
    ledger = CallLedger()
    first = ledger.call("call 1", "f")  # made valid
    assert first == "call_1"
    assert ledger.waiting
    assert ledger.answer("call 1") == (first, "f")
    assert ledger.answer("call 1") is None  # answered once only
    assert ledger.answer("never-called") is None
    assert not ledger.waiting


def test_unanswered_calls_get_error_results_in_call_order() -> None:
    ledger = CallLedger()
    ids = [ledger.call(raw, f"tool_{raw}") for raw in ("a", "b", "c")]
    assert ledger.answer("b") == (ids[1], "tool_b")
    results = ledger.unanswered()
    assert [(r.tool_use_id, r.name) for r in results] == [(ids[0], "tool_a"), (ids[2], "tool_c")]
    assert all(r.is_error and r.content == NO_RESULT for r in results)
    assert ledger.unanswered() == []


def test_a_repeated_call_id_gets_its_own_id_and_the_result_pairs_with_the_latest() -> None:
    ledger = CallLedger()
    old = ledger.call("x", "f")
    ledger.unanswered()
    new = ledger.call("x", "f")
    assert new != old
    assert ledger.answer("x") == (new, "f")


def test_calls_that_share_an_id_are_answered_in_order() -> None:
    ledger = CallLedger()
    first, second = ledger.call("call_0", "f"), ledger.call("call_0", "g")
    assert first != second
    assert ledger.answer("call_0") == (first, "f")
    assert ledger.answer("call_0") == (second, "g")
    assert ledger.unanswered() == []
