"""What serve answers: a pure function of the request, ``route(method,
target, headers, app) -> Reply``. No socket and no HTTP framing here (that
is http.py's); the running sidecar is reached only through ``App``, so the
routing is tested in-process.

``route`` is two steps, for a server that must not block on them: ``plan``
decides at once, and answers what needs no FastCGI (errors, /health); a
check (Probe) or a scrape (Scrape) it hands back, to be run where blocking
is fine, and each makes its Reply from what it got.

Routes (GET or HEAD; other methods 405, other paths 404):

- ``/ping`` (alias ``/fcgi-ping``), ``/handshake``, ``/status``: run that
  mode's check against a configured target (``?target=NAME`` or
  ``/NAME/ping`` when there are several); 200 for OK and WARNING, 503 for
  CRITICAL and UNKNOWN; the body is the plugin's output, or its JSON
  document with ``Accept: application/json`` or ``?format=json``;
- ``/health``, ``/healthz``: the sidecar itself (never a FastCGI call) and
  the age and state of each target's last check;
- ``/metrics``: Prometheus exposition, by the scrape's own deadline.

Nothing in a request chooses an address: a target is one of the
configured names.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Dict, Optional, Protocol, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

from fcgi_wire._values import Value

from .config import TargetConfig
from .probes import MODES, Outcome

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
_MODE_ROUTES = (*MODES, "fcgi-ping")


class Reply(Value):
    """An answer, before HTTP framing."""

    status: int
    body: str
    content_type: str = TEXT
    headers: Tuple[Tuple[str, str], ...] = ()


class Headers(Protocol):
    """A request's headers: http.server's Message, or a dict in tests."""

    def get(self, __name: str, __default: Any = None) -> Any: ...


class App(Protocol):
    """What routing needs of the running sidecar."""

    @property
    def targets(self) -> Sequence[TargetConfig]: ...

    def probe(self, target: TargetConfig, mode: str) -> Outcome: ...

    def latest(self) -> Dict[Tuple[str, str], Outcome]: ...

    def uptime(self, now: float) -> float: ...

    def metrics(self, scrape_timeout: Optional[str]) -> Tuple[str, str]:
        """(the exposition, its content type), by the deadline that the
        X-Prometheus-Scrape-Timeout-Seconds header (or the default) gives."""
        ...


class Probe(Value):
    """A request for a check's outcome: run ``app.probe(target, mode)``,
    then ``reply(outcome)``."""

    target: TargetConfig
    mode: str
    wants_json: bool

    def reply(self, outcome: Outcome) -> Reply:
        status = HTTPStatus.OK if outcome.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        if self.wants_json:
            return Reply(status, outcome.document, JSON)
        return Reply(status, outcome.text)


class Scrape(Value):
    """A request for /metrics, by the deadline its header gives."""

    scrape_timeout: Optional[str]

    def reply(self, app: App) -> Reply:
        body, content_type = app.metrics(self.scrape_timeout)
        return Reply(HTTPStatus.OK, body, content_type)


def route(method: str, target: str, headers: Headers, app: App, now: float) -> Reply:
    """The reply to one request. ``target`` is the request target, a path
    (http.py refuses any other form); ``now`` is time.monotonic()."""
    step = plan(method, target, headers, app, now)
    if isinstance(step, Probe):
        return step.reply(app.probe(step.target, step.mode))
    if isinstance(step, Scrape):
        return step.reply(app)
    return step


def plan(method: str, target: str, headers: Headers, app: App, now: float) -> Union[Reply, Probe, Scrape]:
    """What a request asks for: its reply, when nothing has to be waited
    for, else the check or the scrape to run for it (see route)."""
    if method not in ("GET", "HEAD"):
        return Reply(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method not allowed: GET or HEAD\n",
            headers=(("Allow", "GET, HEAD"),),
        )
    if "?" in target or "#" in target or target.startswith("//"):
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
    else:  # what urlsplit would make of it, without its cost (most requests)
        path, query = target, {}
    wants_json = query.get("format", [""])[-1] == "json" or JSON in (headers.get("Accept") or "")
    parts = [part for part in path.split("/") if part]
    if parts in (["health"], ["healthz"]):
        return _health(app, wants_json, now)
    if parts == ["metrics"]:
        return Scrape(headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
    if parts and parts[-1] in _MODE_ROUTES and len(parts) <= 2:
        mode = "ping" if parts[-1] == "fcgi-ping" else parts[-1]
        name = parts[0] if len(parts) == 2 else query.get("target", [None])[-1]
        return _probe(app, mode, name, wants_json)
    return Reply(HTTPStatus.NOT_FOUND, "not found: /ping /handshake /status /health /metrics\n")


def _probe(app: App, mode: str, name: Optional[str], wants_json: bool) -> Union[Reply, Probe]:
    targets = app.targets
    chosen: Optional[TargetConfig] = None
    if name is None and len(targets) == 1:
        chosen = targets[0]
    elif name is not None:
        chosen = next((target for target in targets if target.name == name), None)
    if chosen is None:
        names = ", ".join(target.name for target in targets)
        why = f"no target {name!r}" if name is not None else "several targets: name one"
        return Reply(HTTPStatus.NOT_FOUND, f"{why} (?target=NAME or /NAME/{mode}); targets: {names}\n")
    return Probe(chosen, mode, wants_json)


def _health(app: App, wants_json: bool, now: float) -> Reply:
    checks = [
        {
            "target": outcome.target,
            "mode": outcome.mode,
            "state": outcome.state,
            "age_seconds": round(now - outcome.at, 3),
        }
        for outcome in sorted(app.latest().values(), key=lambda o: (o.target, o.mode))
    ]
    uptime = round(app.uptime(now), 3)
    if wants_json:
        document = {"status": "ok", "uptime_seconds": uptime, "checks": checks}
        return Reply(HTTPStatus.OK, json.dumps(document) + "\n", JSON)
    lines = [f"ok: check_fastcgi serve, up {uptime:.0f} s"]
    lines += [f"{c['target']} {c['mode']}: {c['state']}, {c['age_seconds']:.1f} s ago" for c in checks]
    return Reply(HTTPStatus.OK, "\n".join(lines) + "\n")
