"""serve's routing in-process: routes.route is a pure function of the
request and what the sidecar knows (an App), so each decision is tried here
without a socket; tests/test_serve.py has the same over real HTTP."""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

import pytest

import fcgi_wire
from check_fastcgi.modes.handshake import HandshakeOptions
from check_fastcgi.modes.ping import PingOptions
from check_fastcgi.modes.status import StatusOptions
from check_fastcgi.serve.config import TargetConfig
from check_fastcgi.serve.probes import Outcome
from check_fastcgi.serve.routes import route


def target(name: str) -> TargetConfig:
    return TargetConfig(
        name=name,
        address=fcgi_wire.TcpAddress("127.0.0.1", 9000),
        ping=PingOptions(),
        status=StatusOptions(),
        handshake=HandshakeOptions(),
    )


class App:
    """What the running sidecar would say: outcomes made up front."""

    def __init__(self, *names: str, state: str = "OK") -> None:
        self.targets = [target(name) for name in names]
        self.state = state
        self.probed: List[Tuple[str, str]] = []
        self.scrape_timeouts: List[Optional[str]] = []

    def probe(self, chosen: TargetConfig, mode: str) -> Outcome:
        self.probed.append((chosen.name, mode))
        return self.outcome(chosen.name, mode)

    def outcome(self, name: str, mode: str) -> Outcome:
        text = f"FASTCGI {self.state} - {name} {mode}\n"
        return Outcome(name, mode, self.state, text, lambda: json.dumps({"state": self.state}), 90.0, 0.001)

    def latest(self) -> Dict[Tuple[str, str], Outcome]:
        return {("www", "ping"): self.outcome("www", "ping")}

    def uptime(self, now: float) -> float:
        return now - 40.0

    def metrics(self, scrape_timeout: Optional[str]) -> Tuple[str, str]:
        self.scrape_timeouts.append(scrape_timeout)
        return "phpfpm_up 1\n", "text/plain; version=0.0.4"


def test_one_target_needs_no_name_and_ok_is_200() -> None:
    app = App("www")
    reply = route("GET", "/ping", {}, app, 100.0)
    assert (reply.status, reply.body) == (200, "FASTCGI OK - www ping\n")
    assert app.probed == [("www", "ping")]


@pytest.mark.parametrize("state", ["CRITICAL", "UNKNOWN"])
def test_critical_and_unknown_are_503(state: str) -> None:
    assert route("GET", "/status", {}, App("www", state=state), 100.0).status == 503


def test_warning_is_still_200() -> None:
    assert route("GET", "/status", {}, App("www", state="WARNING"), 100.0).status == 200


def test_several_targets_are_named_by_path_or_query() -> None:
    app = App("www", "api")
    assert route("GET", "/api/status", {}, app, 100.0).status == 200
    assert route("GET", "/handshake?target=www", {}, app, 100.0).status == 200
    assert app.probed == [("api", "status"), ("www", "handshake")]
    unnamed = route("GET", "/ping", {}, app, 100.0)
    assert unnamed.status == 404 and unnamed.body.startswith("several targets: name one")
    unknown = route("GET", "/nope/ping", {}, app, 100.0)
    assert (
        unknown.status == 404 and "no target 'nope'" in unknown.body and "targets: www, api" in unknown.body
    )


def test_fcgi_ping_is_ping() -> None:
    app = App("www")
    route("GET", "/fcgi-ping", {}, app, 100.0)
    assert app.probed == [("www", "ping")]


def test_json_on_request() -> None:
    by_query = route("GET", "/ping?format=json", {}, App("www"), 100.0)
    by_accept = route("GET", "/ping", {"Accept": "application/json"}, App("www"), 100.0)
    for reply in (by_query, by_accept):
        assert reply.content_type == "application/json" and json.loads(reply.body) == {"state": "OK"}


def test_health_makes_no_fastcgi_call_and_tells_ages() -> None:
    app = App("www")
    reply = route("GET", "/healthz", {}, app, 100.0)
    assert app.probed == []
    assert reply.body == "ok: check_fastcgi serve, up 60 s\nwww ping: OK, 10.0 s ago\n"
    document = json.loads(route("GET", "/health?format=json", {}, app, 100.0).body)
    assert document["checks"] == [{"target": "www", "mode": "ping", "state": "OK", "age_seconds": 10.0}]


def test_metrics_passes_the_scrape_timeout_on() -> None:
    app = App("www")
    reply = route("GET", "/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": "4"}, app, 100.0)
    assert (reply.status, reply.body) == (200, "phpfpm_up 1\n")
    assert app.scrape_timeouts == ["4"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_only_get_and_head(method: str) -> None:
    app = App("www")
    reply = route(method, "/ping", {}, app, 100.0)
    assert reply.status == 405 and ("Allow", "GET, HEAD") in reply.headers
    assert app.probed == []


@pytest.mark.parametrize("path", ["/", "/a/b/ping", "/pingx", "/metrics/x", "/www/health"])
def test_other_paths_are_404(path: str) -> None:
    app = App("www")
    assert route("GET", path, {}, app, 100.0).status == 404
    assert app.probed == []
