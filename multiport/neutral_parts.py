"""Single content blocks → neutral parts: images, documents, tool results, tool schemas."""

from __future__ import annotations

from typing import Any

from .anthropic_wire import (
    Base64Source,
    ContentSource,
    DocumentBlock,
    ImageBlock,
    SearchResultBlock,
    TextBlock,
    TextSource,
    ToolResultBlock,
    UrlSource,
)
from .contracts import ImagePart
from .errors import InvalidRequest

__all__ = [
    "document_text",
    "image_part",
    "result_parts",
    "search_result_text",
    "server_tool_error",
    "strip_schema",
]

_SCHEMA_NAME_KEYS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def image_part(block: ImageBlock, where: str) -> ImagePart:
    source = block.source
    if isinstance(source, Base64Source):
        return ImagePart(
            url=f"data:{source.media_type};base64,{source.data}",
            media_type=source.media_type,
            data=source.data,
        )
    if isinstance(source, UrlSource):
        return ImagePart(url=source.url)
    raise InvalidRequest(
        f"invalid request: this provider cannot read images by file_id; send the image as "
        f"base64 or url - at `{where}.source`"
    )


def document_text(block: DocumentBlock, documents: str, where: str) -> str:
    """A text document as text; any other document is a 400 that says what to send."""
    source = block.source
    text: str | None = None
    if isinstance(source, TextSource):
        text = source.data
    elif isinstance(source, ContentSource):
        content = source.content
        text = (
            content
            if isinstance(content, str)
            else "\n".join(b.text for b in content if isinstance(b, TextBlock))
        )
    if documents == "refuse" or text is None:
        kind = type(source).__struct_config__.tag
        raise InvalidRequest(
            f"invalid request: this provider cannot read {kind!r} documents; "
            f"send the document as text - at `{where}`"
        )
    return f"{block.title}\n\n{text}" if block.title else text


def search_result_text(block: SearchResultBlock) -> str:
    """A search result the client supplies, as text: title, source, then its content."""
    head = "\n".join(x for x in (block.title, block.source) if x)
    body = "\n".join(b.text for b in block.content)
    return f"{head}\n\n{body}" if head else body


def result_parts(block: ToolResultBlock, documents: str, where: str) -> tuple[str, list[ImagePart]]:
    """The text of a tool result (`Error: …` when it failed) and the images it carries."""
    content = block.content
    images: list[ImagePart] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts = []
        for j, item in enumerate(content):
            if isinstance(item, TextBlock):
                texts.append(item.text)
            elif isinstance(item, ImageBlock):
                images.append(image_part(item, f"{where}.content[{j}]"))
            elif isinstance(item, DocumentBlock):
                texts.append(document_text(item, documents, f"{where}.content[{j}]"))
            elif isinstance(item, SearchResultBlock):
                texts.append(search_result_text(item))
            # Blocks of Anthropic's own tools (tool_reference …) mean nothing elsewhere.
        text = "\n".join(texts)
    return (f"Error: {text}" if block.is_error else text), images


def server_tool_error(name: str, kind: str | None, index: int) -> InvalidRequest:
    return InvalidRequest(
        f"invalid request: tool {name!r} (type {kind or 'unknown'}) is a server tool that only "
        f"Anthropic runs, and this provider's upstream cannot; remove it, or set "
        f"`options.server_tools: drop` in the provider file to drop it - at `$.tools[{index}]`"
    )


def strip_schema(schema: Any, keys: frozenset[str], *, names: bool = False) -> Any:
    """Remove schema keywords at any depth; keys of `properties` are names, kept."""
    if isinstance(schema, dict):
        return {
            k: strip_schema(v, keys, names=(k in _SCHEMA_NAME_KEYS) and not names)
            for k, v in schema.items()
            if names or k not in keys
        }
    if isinstance(schema, list):
        return [strip_schema(v, keys) for v in schema]
    return schema
