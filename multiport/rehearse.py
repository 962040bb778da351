"""Templates rehearsed at load time on sample data, so `validate` finds what a run would.

Request templates render every sample Anthropic request shipped in the package. Response
and stream templates render sample upstream answers of the built-in wire formats; a
template written for another shape may fail to read them, which says nothing, but output
that breaks the contract (a misspelt key, a wrong type) is an error whatever the input.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import msgspec

from .anthropic_wire import decode_messages
from .errors import ApiError, TemplateInputError
from .loader import LoadedFile
from .normalize import build_neutral
from .spec import ProviderSpec
from .templates import CompiledTemplate
from .wire import Wire

__all__ = ["rehearse", "sample_requests"]

_SAMPLES = resources.files("multiport") / "samples"
_MODEL = "sample-model"


@functools.cache
def sample_requests() -> dict[str, bytes]:
    """The sample Anthropic requests shipped with the package, by name."""
    return {
        p.name: p.read_bytes()
        for p in sorted(_SAMPLES.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".json")
    }


@functools.cache
def _upstream_samples() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Sample upstream answers and stream chunks of the built-in wire formats."""
    answers: list[tuple[str, Any]] = []
    chunks: list[tuple[str, Any]] = []
    for path in sorted((_SAMPLES / "upstream").iterdir(), key=lambda p: p.name):
        text = path.read_text(encoding="utf-8")
        if path.name.endswith(".response.json"):
            answers.append((path.name, msgspec.json.decode(text)))
        elif path.name.endswith(".stream.jsonl"):
            chunks.extend(
                (f"{path.name} line {n}", msgspec.json.decode(line))
                for n, line in enumerate(text.splitlines(), 1)
                if line.strip()
            )
    return answers, chunks


def rehearse(loaded: LoadedFile, spec: ProviderSpec, wire: Wire) -> None:
    """Render the provider's templates on the samples; problems go to `loaded`."""
    if wire.request is None:
        return
    context = _rehearse_request(loaded, spec, wire.request)
    if context is None:
        return
    answers, chunks = _upstream_samples()
    own = spec.wire.samples
    for kind, template, shipped, declared in (
        ("response", wire.response, answers, own.response if own else []),
        ("stream", wire.stream, chunks, own.stream if own else []),
    ):
        if template is None:
            continue
        mine = [(f"wire.samples.{kind}[{i}]", d) for i, d in enumerate(declared)]
        # The file's own samples are what its upstream sends: they must all render.
        if _rehearse_output(loaded, kind, template, mine, context, must_read=True):
            _rehearse_output(loaded, kind, template, shipped, context, must_read=False)


def _rehearse_request(
    loaded: LoadedFile, spec: ProviderSpec, template: CompiledTemplate
) -> dict[str, Any] | None:
    options = msgspec.to_builtins(spec.options)
    data: dict[str, Any] = {}
    for sample, body in sample_requests().items():
        request = decode_messages(body)
        for stream in (False, True):
            try:
                neutral = build_neutral(
                    request,
                    target=_MODEL,
                    options=spec.options,
                    strip_keys=frozenset(spec.options.strip_schema_keys),
                    max_tokens_field=spec.options.max_tokens_field,
                    output_limit=None,
                    stream=stream,
                )
                data = msgspec.to_builtins(neutral.request)
                template.render(request=data, options=options, model=_MODEL)
            except ApiError as exc:
                loaded.problem(("wire", "request"), f"{exc.message} (sample request {sample})")
                # The other templates are still rehearsed: every problem in one run.
                return {"request": data, "options": options, "model": _MODEL} if data else None
    return {"request": data, "options": options, "model": _MODEL}


def _rehearse_output(
    loaded: LoadedFile,
    kind: str,
    template: CompiledTemplate,
    samples: list[tuple[str, Any]],
    context: dict[str, Any],
    *,
    must_read: bool,
) -> bool:
    """Render each sample; False after the first problem, which goes to `loaded`."""
    variable = "response" if kind == "response" else "chunk"
    for sample, document in samples:
        try:
            template.render(**{variable: document}, **context)
        except TemplateInputError as exc:
            if must_read:
                loaded.problem(("wire", kind), f"{exc.message} (sample upstream {sample})")
                return False
            # A shipped sample of another upstream's shape says nothing about this template.
        except ApiError as exc:
            loaded.problem(("wire", kind), f"{exc.message} (sample upstream {sample})")
            return False
    return True
