"""A FastCGI failure as a check result: the state SPEC section 4 gives it and
one line that names the cause and, where we can tell, the fix."""

from __future__ import annotations

import nagiosplugin
from nagiosplugin.state import Critical, ServiceState, Unknown

import fcgi_wire

#: Shown after the error text; keyed by the most specific class that applies.
_HINTS = {
    fcgi_wire.SocketNotFound: "is the server running, and is the path its listen address?",
    fcgi_wire.PermissionDenied: (
        "is the monitoring user in the socket's group? see listen.owner, listen.group, listen.mode"
    ),
    fcgi_wire.NameResolutionError: "check -H",
    fcgi_wire.BacklogFull: "every worker busy and the backlog full",
}


def state_of(exc: fcgi_wire.FastCGIError, timeout_state: ServiceState) -> ServiceState:
    """Down, broken or refusing is CRITICAL; a cause on our side (a name that
    does not resolve, no permission on the socket) is UNKNOWN."""
    if isinstance(exc, fcgi_wire.Timeout):
        return timeout_state
    if isinstance(exc, (fcgi_wire.NameResolutionError, fcgi_wire.PermissionDenied)):
        return Unknown
    return Critical


def describe(exc: fcgi_wire.FastCGIError) -> str:
    if isinstance(exc, fcgi_wire.ProtocolError):
        text = f"protocol error: {exc.detail}" + (f" (from {exc.address})" if exc.address else "")
    elif isinstance(exc, fcgi_wire.RequestRefused):
        text = f"{exc.address} refused the request: {exc.protocol_status.label}"
    elif (
        isinstance(exc, fcgi_wire.ConnectionRefused)
        and isinstance(exc.address, str)
        and exc.address.startswith("/")
    ):
        text = f"{exc} (the socket file exists but nothing listens on it)"
    else:
        text = str(exc)
    hint = next((h for cls, h in _HINTS.items() if isinstance(exc, cls)), None)
    return f"{text} ({hint})" if hint else text


class Failure:
    """A metric value that is an error, not a number."""

    def __init__(self, exc: fcgi_wire.FastCGIError) -> None:
        self.exc = exc

    def __str__(self) -> str:
        return describe(self.exc)


class Problem(Failure):
    """A failure the mode found in a reply that arrived, with its own state."""

    def __init__(self, state: ServiceState, text: str) -> None:
        self.state = state
        self.text = text

    def __str__(self) -> str:
        return self.text


def failure_metric(exc: fcgi_wire.FastCGIError) -> nagiosplugin.Metric:
    return nagiosplugin.Metric("fastcgi", Failure(exc), context="fastcgi")


def problem_metric(state: ServiceState, text: str) -> nagiosplugin.Metric:
    return nagiosplugin.Metric("fastcgi", Problem(state, text), context="fastcgi")


class FailureContext(nagiosplugin.Context):
    """Evaluates failure and problem metrics; it never produces perfdata."""

    def __init__(self, timeout_state: ServiceState) -> None:
        super().__init__("fastcgi")
        self.timeout_state = timeout_state

    def evaluate(self, metric: nagiosplugin.Metric, resource: nagiosplugin.Resource) -> nagiosplugin.Result:
        failure = metric.value
        if isinstance(failure, Problem):
            return nagiosplugin.Result(failure.state, str(failure), metric)
        return nagiosplugin.Result(state_of(failure.exc, self.timeout_state), str(failure), metric)
