"""Mode ``ping``: a complete FCGI_RESPONDER request to FPM's ping path or any
health script, matching the HTTP status and the body."""

from __future__ import annotations

import re

import nagiosplugin
from nagiosplugin.state import Critical, Ok

import fcgi_wire
from fcgi_wire._values import TYPE_CHECKING, Value

from ..cgi_params import build_params, param_pair
from ..failures import FailureContext, failure_metric, from_error
from ..text import human_seconds, printable, quoted
from . import Mode
from .common import (
    FastCGISummary,
    add_response_time_thresholds,
    fastcgi_check,
    nagios_range,
    range_arguments,
    response_time_context,
)

if TYPE_CHECKING:
    import argparse
    from typing import Dict, Iterator, List, Optional, Pattern, Tuple

    from ..settings import Settings
    from ..target import Target

#: PHP-FPM's pool template (www.conf) and Debian ship ``ping.path = /ping``
#: (commented out) beside ``pm.status_path = /status``.
DEFAULT_PATH = "/ping"
DEFAULT_REPLY = "pong"


class StatusRanges:
    """--expect-status: ``200``, ``200-299,301``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ranges: List[Tuple[int, int]] = []
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            try:
                bounds = (int(low), int(high) if dash else int(low))
            except ValueError:
                raise ValueError(f"{text!r} is not a list of statuses like 200-299,301") from None
            if not 100 <= bounds[0] <= bounds[1] <= 999:
                raise ValueError(f"{part.strip()!r} is not a status range within 100-999")
            self.ranges.append(bounds)

    def __contains__(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusRanges) and other.ranges == self.ranges

    def __hash__(self) -> int:
        return hash(tuple(self.ranges))


def _regex(text: str) -> Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a regular expression: {exc}") from None


class PingOptions(Value):
    path: str = DEFAULT_PATH
    script_filename: Optional[str] = None
    query: str = ""
    method: str = "GET"
    body: bytes = b""
    params: Tuple[Tuple[str, str], ...] = ()
    expect: Optional[str] = None
    regex: Optional[Pattern[str]] = None
    expect_status: StatusRanges = StatusRanges("200")
    warning: Optional[nagiosplugin.Range] = None
    critical: Optional[nagiosplugin.Range] = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PingOptions:
        """The options from their settings, keyed as the command line's
        destinations: path, script_filename, query, method, body, param
        (NAME=VALUE strings), expect, regex, expect_status, warning, critical."""
        return cls(
            path=settings.text("path", DEFAULT_PATH),
            script_filename=settings.optional_text("script_filename"),
            query=settings.text("query"),
            method=settings.text("method", "GET").upper(),
            body=settings.text("body").encode("utf-8", "surrogateescape"),
            params=tuple(settings.each("param", param_pair)),
            expect=settings.optional_text("expect"),
            regex=settings.parsed("regex", _regex),
            expect_status=settings.parsed("expect_status", StatusRanges) or StatusRanges("200"),
            warning=settings.parsed("warning", nagios_range),
            critical=settings.parsed("critical", nagios_range),
        )

    def arguments(self) -> List[str]:
        """Command-line arguments that give these options back: what
        differs from the defaults (an expectation the path implies, "pong"
        for /ping, is left out)."""
        found: List[str] = []
        if self.path != DEFAULT_PATH:
            found += ["--path", self.path]
        if self.script_filename is not None:
            found += ["--script-filename", self.script_filename]
        if self.query:
            found += ["--query", self.query]
        if self.method != "GET":
            found += ["--method", self.method]
        if self.body:
            found += ["--body", self.body.decode("utf-8", "surrogateescape")]
        for name, value in self.params:
            found += ["--param", f"{name}={value}"]
        if self.expect is not None and self.expect != expected_text(self._replace(expect=None)):
            found += ["-e", self.expect]
        if self.regex is not None:
            found += ["-r", self.regex.pattern]
        if self.expect_status != StatusRanges("200"):
            found += ["--expect-status", str(self.expect_status)]
        return found + range_arguments(self.warning, self.critical)

    @property
    def default_path(self) -> bool:
        return self.path == DEFAULT_PATH and self.script_filename is None

    def cgi_params(self) -> Dict[str, str]:
        return build_params(
            self.path,
            script_filename=self.script_filename,
            query=self.query,
            method=self.method,
            body=self.body,
            extra=self.params,
        )


def expected_text(options: PingOptions) -> Optional[str]:
    if options.expect is not None:
        return options.expect
    if options.path == DEFAULT_PATH and options.method != "HEAD" and options.regex is None:
        return DEFAULT_REPLY
    return None


def body_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def status_text(response: fcgi_wire.Response) -> str:
    """'404 Not Found'; the reason phrase is the server's text, so escaped."""
    return f"{response.status} {printable(response.reason, 40)}".strip()


class PingProbe(nagiosplugin.Resource):
    """Sends the request; keeps the response for the summary."""

    def __init__(self, target: Target, options: PingOptions) -> None:
        self.target = target
        self.options = options
        self.params = options.cgi_params()
        self.response: Optional[fcgi_wire.Response] = None

    @property
    def name(self) -> str:
        return "ping"

    def probe(self) -> Iterator[nagiosplugin.Metric]:
        try:
            self.response = response = self.target.request(self.params, self.options.body)
        except fcgi_wire.FastCGIError as exc:
            yield failure_metric(from_error(exc, self.target.limits))
            return
        yield nagiosplugin.Metric("response", response, context="response")
        yield nagiosplugin.Metric("time", round(response.elapsed, 6), "s", min=0, context="time")
        yield nagiosplugin.Metric("size", len(response.body), "B", min=0, context="size")


class ResponseContext(nagiosplugin.Context):
    """Status first, then the body: a 404 page need not also be told it lacks "pong"."""

    def __init__(self, options: PingOptions) -> None:
        super().__init__("response")
        self.options = options
        self.expect = expected_text(options)

    def evaluate(self, metric: nagiosplugin.Metric, resource: nagiosplugin.Resource) -> nagiosplugin.Result:
        response: fcgi_wire.Response = metric.value
        got = f"got {quoted(body_text(response.body))}" if response.body else "empty body"
        options = self.options
        if response.status not in options.expect_status:
            status = status_text(response)
            hint = self._status_hint(response)
            text = f"HTTP {status}, expected {options.expect_status}{hint}: {got}"
            return nagiosplugin.Result(Critical, text, metric)
        body = body_text(response.body)
        if self.expect is not None and self.expect not in body:
            return nagiosplugin.Result(
                Critical, f"body does not contain {quoted(self.expect)}: {got}", metric
            )
        if options.regex is not None and not options.regex.search(body):
            pattern = printable(options.regex.pattern, 40)
            return nagiosplugin.Result(Critical, f"body does not match /{pattern}/: {got}", metric)
        return nagiosplugin.Result(Ok, None, metric)

    def _status_hint(self, response: fcgi_wire.Response) -> str:
        if response.status != 404:
            return ""
        options = self.options
        if not options.path.startswith("/"):
            return f" (--path {options.path} has no leading /: FPM matches ping.path against /{options.path})"
        if options.default_path:
            return f" (is ping.path = {DEFAULT_PATH} set in the pool? else give its path with --path)"
        if b"Primary script unknown" in response.stderr:
            return " (FPM: Primary script unknown; check --path and --script-filename)"
        return " (check --path)"


class PingSummary(FastCGISummary):
    @staticmethod
    def _where(resource: PingProbe) -> str:
        return f"{resource.target} {printable(resource.options.path)}"

    def ok(self, results: nagiosplugin.Results) -> str:
        resource: PingProbe = results[0].resource
        response = resource.response
        assert response is not None
        status = status_text(response)
        shown = f": {quoted(body_text(response.body), 30)}" if response.body else ""
        return f"{self._where(resource)} answered {status} in {human_seconds(response.elapsed)}{shown}"

    def problem(self, results: nagiosplugin.Results) -> str:
        result = results.first_significant
        if result.metric is not None and result.metric.name in ("response", "time", "size"):
            return f"{self._where(result.resource)}: {result}"
        return super().problem(results)

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines = super().verbose(results)
        response = results[0].resource.response
        if response is None:
            return lines
        lines.append(f"status: {status_text(response)}")
        lines.extend(
            f"header: {printable(name)}: {printable(value, 100)}" for name, value in response.headers[:20]
        )
        if len(response.headers) > 20:
            lines.append(f"header: ... {len(response.headers) - 20} more")
        if response.stderr:
            lines.append(f"app stderr: {printable(body_text(response.stderr), 200)}")
        lines.append(f"body: {quoted(body_text(response.body), 200)}")
        return lines


class Ping(Mode):
    name = "ping"
    help = "send a full request (FPM's ping path or a health script): status and body"
    description = """\
Sends a complete FastCGI responder request and checks the CGI response: the
HTTP status (from the Status: header; none means 200) and the body. By default
it asks PHP-FPM's ping path /ping and expects "pong", which needs
ping.path = /ping in the pool. For a health script, give --path (the URL
path) and --script-filename (the file on the server)."""
    options_type = PingOptions
    perfdata = (
        ("time", "s", "time from connect to the end of the response"),
        ("size", "B", "size of the response body"),
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        request = parser.add_argument_group("request")
        request.add_argument("--path", help="SCRIPT_NAME, REQUEST_URI, DOCUMENT_URI (default /ping)")
        request.add_argument(
            "--script-filename",
            metavar="FILE",
            help="SCRIPT_FILENAME, the file on the server (default: the path)",
        )
        request.add_argument("--query", metavar="STRING", help="QUERY_STRING")
        request.add_argument("--method", help="REQUEST_METHOD (default GET)")
        request.add_argument(
            "--body", metavar="STRING", help="request body; sets CONTENT_LENGTH and CONTENT_TYPE"
        )
        request.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="extra or overriding CGI parameter; repeatable",
        )
        expect = parser.add_argument_group("expectations and thresholds")
        expect.add_argument(
            "-e", "--expect", metavar="STRING", help='body must contain it (default "pong" for /ping)'
        )
        expect.add_argument("-r", "--regex", metavar="PATTERN", help="body must match it (search)")
        expect.add_argument(
            "--expect-status",
            metavar="LIST",
            help="accepted HTTP statuses, e.g. 200-299,301 (default 200)",
        )
        add_response_time_thresholds(expect)

    def check(self, options: PingOptions, target: Target) -> nagiosplugin.Check:
        return fastcgi_check(
            PingProbe(target, options),
            ResponseContext(options),
            response_time_context(options.warning, options.critical),
            nagiosplugin.ScalarContext("size", fmt_metric="{valueunit}"),
            FailureContext(),
            PingSummary(),
        )


MODE = Ping()
