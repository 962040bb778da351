"""The whole exception tree of multiport.

MultiportError
├── ConfigError            a provider file cannot be loaded (file, line, column, path)
│   └── ConfigErrors       several ConfigErrors found in one run
├── TemplateInputError     a response or stream template cannot read the upstream's data
└── ApiError               answered to a client as an Anthropic error body
    ├── InvalidRequest         400 invalid_request_error
    ├── AuthenticationError    401 authentication_error
    ├── NotFound               404 not_found_error
    ├── TemplateRenderError    500 api_error (names the template and line)
    ├── Overloaded             529 overloaded_error: a provider's own limit is reached
    └── UpstreamError          an upstream call failed
        ├── UpstreamStatusError    the upstream answered 4xx/5xx (status mapped)
        ├── UpstreamUnreachable    502 api_error: connection refused, DNS, reset
        ├── UpstreamTimeout        504 timeout_error
        ├── UpstreamProtocolError  502 api_error: the upstream answered garbage
        └── UpstreamStreamError    502 api_error: the upstream's stream failed
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "ConfigErrors",
    "InvalidRequest",
    "MultiportError",
    "NotFound",
    "Overloaded",
    "Problem",
    "TemplateInputError",
    "TemplateRenderError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStatusError",
    "UpstreamStreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "error_type_for_status",
]

_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    """The Anthropic error type for an HTTP status."""
    if status in _TYPES_BY_STATUS:
        return _TYPES_BY_STATUS[status]
    return "invalid_request_error" if status < 500 else "api_error"


class MultiportError(Exception):
    """Root of every error multiport raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a provider file, located as precisely as the loader can."""

    file: str
    line: int
    column: int
    message: str
    path: str = "$"
    severity: str = "error"

    def __str__(self) -> str:
        where = f" (at {self.path})" if self.path not in ("", "$") else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}{where}"


class ConfigError(MultiportError):
    """A provider file is invalid."""

    exit_code = 1

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class ConfigErrors(ConfigError):
    """Several problems, reported together."""

    def __init__(self, problems: list[Problem]) -> None:
        MultiportError.__init__(self, "\n".join(str(p) for p in problems))
        self.problems = problems
        self.problem = problems[0]


class TemplateInputError(MultiportError):
    """A response or stream template failed on what the upstream sent: the upstream's fault."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(MultiportError):
    """An error answered to the client as an Anthropic error body."""

    status_code = 500
    error_type = "api_error"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
            self.error_type = error_type_for_status(status_code)


class InvalidRequest(ApiError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ApiError):
    status_code = 401
    error_type = "authentication_error"


class NotFound(ApiError):
    status_code = 404
    error_type = "not_found_error"


class TemplateRenderError(ApiError):
    status_code = 500
    error_type = "api_error"


class Overloaded(ApiError):
    status_code = 529
    error_type = "overloaded_error"


class UpstreamError(ApiError):
    status_code = 502
    error_type = "api_error"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; the status is passed on, mapped."""

    def __init__(self, message: str, *, upstream_status: int) -> None:
        super().__init__(message, status_code=_client_status(upstream_status))
        self.upstream_status = upstream_status
        self.retry_after: str | None = None


class UpstreamUnreachable(UpstreamError):
    status_code = 502
    error_type = "api_error"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "timeout_error"


class UpstreamProtocolError(UpstreamError):
    status_code = 502
    error_type = "api_error"


def _client_status(upstream_status: int) -> int:
    # An upstream 401/403 means the gateway's credentials are wrong, which the client
    # cannot fix by retrying; other statuses pass through so clients retry 429/5xx.
    if upstream_status in _TYPES_BY_STATUS:
        return upstream_status
    return 400 if upstream_status < 500 else 502


class UpstreamStreamError(UpstreamError):
    status_code = 502
    error_type = "api_error"
