"""The public surface of the package is deliberate: pinned here."""

from __future__ import annotations

import multiport


def test_public_names() -> None:
    assert multiport.__all__ == sorted(multiport.__all__)
    assert multiport.__all__ == [
        "ApiError",
        "ConfigError",
        "LoadResult",
        "MultiportError",
        "Provider",
        "ProviderSpec",
        "__version__",
        "load_providers",
    ]
    for name in multiport.__all__:
        assert hasattr(multiport, name)
