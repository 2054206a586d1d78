"""Mode ``ping``: a complete FCGI_RESPONDER request to FPM's ping path or any
health script, matching the HTTP status and the body."""

from __future__ import annotations

import argparse
import re
from typing import Iterator, List, Optional, Pattern, Tuple

import nagiosplugin
from nagiosplugin.state import Critical, Ok

import fcgi_wire

from .cgi_request import build_params, param_pair
from .failures import FailureContext, failure_metric
from .summary import FastCGISummary, human_seconds, printable, quoted
from .target import Target

DEFAULT_PATH = "/fpm-ping"
DEFAULT_REPLY = "pong"

HELP = "send a full request (FPM's ping path or a health script): status and body"
DESCRIPTION = """\
Sends a complete FastCGI responder request and checks the CGI response: the
HTTP status (from the Status: header; none means 200) and the body. By default
it asks PHP-FPM's ping path /fpm-ping and expects "pong", which needs
ping.path = /fpm-ping in the pool. For a health script, give --path (the URL
path) and --script-filename (the file on the server)."""

PERFDATA = [
    ("time", "s", "time from connect to the end of the response"),
    ("size", "B", "size of the response body"),
]


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
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not a list of statuses like 200-299,301"
                ) from None
            if not 100 <= bounds[0] <= bounds[1] <= 999:
                raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a status range within 100-999")
            self.ranges.append(bounds)

    def __contains__(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return self.text


def _regex(text: str) -> Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    request = parser.add_argument_group("request")
    request.add_argument(
        "--path", default=DEFAULT_PATH, help="SCRIPT_NAME, REQUEST_URI, DOCUMENT_URI (default /fpm-ping)"
    )
    request.add_argument(
        "--script-filename",
        metavar="FILE",
        help="SCRIPT_FILENAME, the file on the server (default: the path)",
    )
    request.add_argument("--query", default="", metavar="STRING", help="QUERY_STRING")
    request.add_argument("--method", default="GET", type=str.upper, help="REQUEST_METHOD (default GET)")
    request.add_argument(
        "--body", metavar="STRING", help="request body; sets CONTENT_LENGTH and CONTENT_TYPE"
    )
    request.add_argument(
        "--param",
        action="append",
        default=[],
        type=param_pair,
        metavar="NAME=VALUE",
        help="extra or overriding CGI parameter; repeatable",
    )
    expect = parser.add_argument_group("expectations and thresholds")
    expect.add_argument(
        "-e", "--expect", metavar="STRING", help='body must contain it (default "pong" for /fpm-ping)'
    )
    expect.add_argument("-r", "--regex", type=_regex, metavar="PATTERN", help="body must match it (search)")
    expect.add_argument(
        "--expect-status",
        type=StatusRanges,
        default=StatusRanges("200"),
        metavar="LIST",
        help="accepted HTTP statuses, e.g. 200-299,301 (default 200)",
    )
    expect.add_argument(
        "-w", "--warning", metavar="RANGE", type=nagiosplugin.Range, help="response time in seconds"
    )
    expect.add_argument(
        "-c", "--critical", metavar="RANGE", type=nagiosplugin.Range, help="response time in seconds"
    )


def expected_text(args: argparse.Namespace) -> Optional[str]:
    if args.expect is not None:
        return str(args.expect)
    if args.path == DEFAULT_PATH and args.method != "HEAD" and args.regex is None:
        return DEFAULT_REPLY
    return None


def body_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def status_text(response: fcgi_wire.Response) -> str:
    """'404 Not Found'; the reason phrase is the server's text, so escaped."""
    return f"{response.status} {printable(response.reason, 40)}".strip()


class Ping(nagiosplugin.Resource):
    def __init__(self, target: Target, args: argparse.Namespace) -> None:
        self.target = target
        self.args = args
        self.response: Optional[fcgi_wire.Response] = None
        body = (args.body or "").encode("utf-8")
        self.body = body
        self.params = build_params(
            args.path,
            script_filename=args.script_filename,
            query=args.query,
            method=args.method,
            body=body,
            extra=args.param,
        )

    @property
    def name(self) -> str:
        return "ping"

    def probe(self) -> Iterator[nagiosplugin.Metric]:
        try:
            self.response = response = fcgi_wire.request(
                self.target.address, self.params, self.body, **self.target.limits()
            )
        except fcgi_wire.FastCGIError as exc:
            yield failure_metric(exc)
            return
        yield nagiosplugin.Metric("response", response, context="response")
        yield nagiosplugin.Metric("time", round(response.elapsed, 6), "s", min=0, context="time")
        yield nagiosplugin.Metric("size", len(response.body), "B", min=0, context="size")


class ResponseContext(nagiosplugin.Context):
    """Status first, then the body: a 404 page need not also be told it lacks "pong"."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("response")
        self.args = args
        self.expect = expected_text(args)

    def evaluate(self, metric: nagiosplugin.Metric, resource: nagiosplugin.Resource) -> nagiosplugin.Result:
        response: fcgi_wire.Response = metric.value
        got = f"got {quoted(body_text(response.body))}" if response.body else "empty body"
        if response.status not in self.args.expect_status:
            status = status_text(response)
            hint = self._status_hint(response)
            text = f"HTTP {status}, expected {self.args.expect_status}{hint}: {got}"
            return nagiosplugin.Result(Critical, text, metric)
        body = body_text(response.body)
        if self.expect is not None and self.expect not in body:
            return nagiosplugin.Result(Critical, f"body does not contain {self.expect!r}: {got}", metric)
        if self.args.regex is not None and not self.args.regex.search(body):
            return nagiosplugin.Result(
                Critical, f"body does not match /{self.args.regex.pattern}/: {got}", metric
            )
        return nagiosplugin.Result(Ok, None, metric)

    def _status_hint(self, response: fcgi_wire.Response) -> str:
        if response.status != 404:
            return ""
        if self.args.path == DEFAULT_PATH and self.args.script_filename is None:
            return f" (is ping.path = {DEFAULT_PATH} set in the pool?)"
        if b"Primary script unknown" in response.stderr:
            return " (FPM: Primary script unknown; check --script-filename)"
        return ""


class PingSummary(FastCGISummary):
    def __init__(self, resource: Ping) -> None:
        super().__init__(resource.target)
        self.resource = resource

    def _where(self) -> str:
        return f"{self.target} {self.resource.args.path}"

    def ok(self, results: nagiosplugin.Results) -> str:
        response = self.resource.response
        assert response is not None
        status = status_text(response)
        shown = f": {quoted(body_text(response.body), 30)}" if response.body else ""
        return f"{self._where()} answered {status} in {human_seconds(response.elapsed)}{shown}"

    def problem(self, results: nagiosplugin.Results) -> str:
        result = results.first_significant
        if result.metric is not None and result.metric.name in ("response", "time", "size"):
            return f"{self._where()}: {result}"
        return super().problem(results)

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        lines = super().verbose(results)
        response = self.resource.response
        if response is None:
            return lines
        lines.append(f"status: {status_text(response)}")
        lines.extend(
            f"header: {printable(name)}: {printable(value, 100)}" for name, value in response.headers
        )
        if response.stderr:
            lines.append(f"app stderr: {printable(body_text(response.stderr), 200)}")
        lines.append(f"body: {quoted(body_text(response.body), 200)}")
        return lines


def build_check(
    args: argparse.Namespace, target: Target, timeout_state: nagiosplugin.state.ServiceState
) -> nagiosplugin.Check:
    resource = Ping(target, args)
    return nagiosplugin.Check(
        resource,
        ResponseContext(args),
        nagiosplugin.ScalarContext(
            "time", args.warning, args.critical, fmt_metric="response time {valueunit}"
        ),
        nagiosplugin.ScalarContext("size", fmt_metric="{valueunit}"),
        FailureContext(timeout_state),
        PingSummary(resource),
        name="fastcgi",
    )
