"""multiport: one gateway, many providers, declared in YAML."""

from .compile import LoadResult, load_providers
from .errors import ApiError, ConfigError, MultiportError
from .provider import Provider
from .spec import ProviderSpec

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ConfigError",
    "LoadResult",
    "MultiportError",
    "Provider",
    "ProviderSpec",
    "__version__",
    "load_providers",
]
