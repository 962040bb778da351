"""The committed JSON Schema is generated from the spec, and shipped files satisfy it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from multiport.cli import provider_schema

from .conftest import PROVIDERS_DIR, ROOT

SCHEMA_FILE = ROOT / "schemas" / "provider.schema.json"


def test_committed_schema_matches_the_spec() -> None:
    assert SCHEMA_FILE.read_text() == provider_schema(), (
        "schemas/provider.schema.json is stale: run `multiport schema > schemas/provider.schema.json`"
    )


@pytest.mark.parametrize("path", sorted(PROVIDERS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_yaml_validates_against_schema(path: Path) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/provider.schema.json\n")
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(text))


def test_schema_rejects_unknown_keys() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(
            {"port": 1, "base_url": "http://x", "prot": 2}
        )


def test_every_field_is_documented() -> None:
    import msgspec.inspect as mi

    from multiport.spec import ProviderSpec

    doc = (ROOT / "docs" / "provider-configuration.md").read_text()

    def names(info: mi.Type, prefix: str) -> list[str]:
        while isinstance(info, mi.Metadata):
            info = info.type
        if isinstance(info, mi.UnionType):
            nested = [t for t in info.types if isinstance(t, mi.StructType)]
            info = nested[0] if nested else info
        if isinstance(info, mi.ListType):
            return names(info.item_type, prefix + "[].")
        if not isinstance(info, mi.StructType):
            return []
        out = []
        for f in info.fields:
            out.append(prefix + f.encode_name)
            out += names(f.type, prefix + f.encode_name + ".")
        return out

    missing = [
        n
        for n in names(mi.type_info(ProviderSpec), "")
        if f"`{n.replace('.[].', '[].')}`" not in doc
    ]
    assert not missing, f"docs/provider-configuration.md lacks {missing}"


def test_generated_field_tables_match_the_code() -> None:
    from multiport.docgen import refresh_docs

    assert refresh_docs(ROOT / "docs", write=False) == [], "run `multiport schema --docs docs`"
