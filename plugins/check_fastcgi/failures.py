"""A failure as a check result: the state it deserves and one line that
names the cause and, where we can tell, the fix.

fcgi_wire's errors carry facts (address, phase, bytes sent and received);
the operator's words live here, because only the plugin knows what the
check was for: "no worker answered" means something to a PHP-FPM admin.
"""

from __future__ import annotations

import nagiosplugin
from nagiosplugin.state import Critical, Unknown, Warn

import fcgi_wire
from fcgi_wire._values import TYPE_CHECKING, Value

from .text import printable_bytes

if TYPE_CHECKING:
    from typing import Tuple

    from nagiosplugin.state import ServiceState

    from .target import Limits

STATES = {"warning": Warn, "critical": Critical, "unknown": Unknown}

#: The metric and context every failure travels under.
FAILURE = "failure"

#: Shown after the error text; keyed by the most specific class that applies.
_HINTS = {
    fcgi_wire.SocketNotFound: "is the server running, and is the path its listen address?",
    fcgi_wire.PermissionDenied: (
        "is the monitoring user in the socket's group? see listen.owner, listen.group, listen.mode"
    ),
    fcgi_wire.NameResolutionError: "check -H",
    fcgi_wire.BacklogFull: "every worker busy and the backlog full: overloaded?",
    fcgi_wire.NotASocket: "is -s the pool's listen path?",
}


class Failure(Value):
    """A metric value that is a reason, not a number: its state, the line
    that says why, and what -v adds."""

    state: ServiceState
    text: str
    details: Tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.text


def from_error(exc: fcgi_wire.FastCGIError, limits: Limits) -> Failure:
    return Failure(_state_of(exc, limits), _describe(exc, limits), _details(exc))


def _state_of(exc: fcgi_wire.FastCGIError, limits: Limits) -> ServiceState:
    """Down, broken or refusing is CRITICAL; a cause on our side (a name that
    does not resolve, no permission on the socket) is UNKNOWN."""
    if isinstance(exc, fcgi_wire.Timeout):
        return STATES[limits.timeout_state]
    if isinstance(exc, (fcgi_wire.NameResolutionError, fcgi_wire.PermissionDenied)):
        return Unknown
    return Critical


def _describe(exc: fcgi_wire.FastCGIError, limits: Limits) -> str:
    if isinstance(exc, fcgi_wire.Timeout):
        text = _timeout(exc, limits)
    elif isinstance(exc, fcgi_wire.ProtocolError):
        text = f"protocol error: {exc.detail}" + (f" (from {exc.address})" if exc.address else "")
    elif isinstance(exc, fcgi_wire.RequestRefused):
        text = f"{exc.address} refused the request: {exc.protocol_status.label}"
    elif isinstance(exc, fcgi_wire.ConnectionRefused) and str(exc.address).startswith("/"):
        text = f"{exc} (the socket file exists but nothing listens on it)"
    else:
        text = str(exc)
    hint = next((h for cls, h in _HINTS.items() if isinstance(exc, cls)), None)
    return f"{text} ({hint})" if hint else text


#: What each phase's timeout means, in the operator's words.
_TIMEOUT_WORDS = {
    "resolve": "resolving {where} timed out after {limit}",
    "connect": "connect to {where}: timed out after {limit}",
    "send": "sending the request to {where} timed out after {limit}",
    "reply": (
        "no reply from {where} within {limit}: connection accepted, but nothing answered "
        "(every worker busy, or not a FastCGI server?)"
    ),
    "reply-incomplete": "reply from {where} incomplete after {limit}: {received} bytes received",
}


def _timeout(exc: fcgi_wire.Timeout, limits: Limits) -> str:
    """The library states the phase and how long the exchange had; the
    operator set -t (start-up included) or --connect-timeout: name the one
    that ran out, and what a silent accepted connection usually means."""
    if exc.phase == "connect" and limits.connect_timeout is not None and exc.limit < limits.timeout:
        limit = f"{exc.limit:g}s (--connect-timeout)"
    else:
        limit = f"{limits.timeout:g}s (-t)"
    words = _TIMEOUT_WORDS.get(exc.phase, "{phase} timed out after {limit} at {where}")
    return words.format(
        where=exc.address or "the server", limit=limit, received=exc.received, phase=exc.phase
    )


def _details(exc: fcgi_wire.FastCGIError) -> Tuple[str, ...]:
    """For -v: what went out and what came back."""
    if not exc.sent:
        return ()
    received = (
        f"received: {exc.received} bytes, starting '{printable_bytes(exc.head, 64)}'"
        if exc.received
        else "received: nothing"
    )
    return (f"sent: a FastCGI request of {exc.sent} bytes", received)


def failure_metric(failure: Failure) -> nagiosplugin.Metric:
    return nagiosplugin.Metric(FAILURE, failure, context=FAILURE)


class FailureContext(nagiosplugin.Context):
    """Evaluates failure metrics; it never produces perfdata."""

    def __init__(self) -> None:
        super().__init__(FAILURE)

    def evaluate(self, metric: nagiosplugin.Metric, resource: nagiosplugin.Resource) -> nagiosplugin.Result:
        failure: Failure = metric.value
        return nagiosplugin.Result(failure.state, failure.text, metric)
