"""One options builder per mode: the command line, serve's --config tables,
serve's command line and discover all build a mode's options through its
``from_settings``, so the same settings give the same options and the same
bad value the same words; ``arguments()`` gives the command line back.
In-process: these are pure functions."""

from __future__ import annotations

from typing import Any, List

import pytest

import fcgi_wire
from check_fastcgi import arguments
from check_fastcgi.discover.pools import as_pool
from check_fastcgi.fpm.config_files import PoolConfig
from check_fastcgi.fpm.listen import listen_address
from check_fastcgi.modes import load
from check_fastcgi.output import Output
from check_fastcgi.serve.config import target_config
from check_fastcgi.settings import Settings
from check_fastcgi.target import UsageError, parse_address, target_arguments


def from_command_line(mode: str, argv: List[str]) -> Any:
    """The options `check_fastcgi MODE ARGV` runs with (no usage error
    from argparse itself here: its error() ends the process)."""
    parser = arguments.build_mode_parser(mode, load(mode), Output("nagios"))
    args = parser.parse_args(argv)
    return load(mode).options_type.from_settings(Settings(vars(args), arguments.option_names(parser)))


@pytest.mark.parametrize(
    ("mode", "argv"),
    [
        ("handshake", []),
        ("handshake", ["-w", "0.5", "-c", "@1:2"]),
        ("ping", []),
        ("ping", ["--path", "/health.php", "--script-filename", "/srv/health.php", "-e", "ok"]),
        ("ping", ["--method", "post", "--body", "a=1", "--param", "HTTP_HOST=x", "--param", "A=b=c"]),
        ("ping", ["--query", "x=1", "-r", "^po", "--expect-status", "200-299,301", "-w", "1", "-c", "2"]),
        ("status", []),
        ("status", ["--path", "/fpm-status", "--full", "--pool", "www", "--max-children", "12"]),
        ("status", ["--state-file", "/tmp/x", "-w", "active_percent=80", "-c", "listen_queue=10:"]),
    ],
)
def test_arguments_give_the_same_options_back(mode: str, argv: List[str]) -> None:
    options = from_command_line(mode, argv)
    again = from_command_line(mode, options.arguments())
    assert again == options
    assert again.arguments() == options.arguments()


def test_the_default_expectation_is_no_argument() -> None:
    """discover's pools say expect "pong" for /ping; the command line it
    writes leaves that out, and says it where the path is another."""
    assert from_command_line("ping", ["-e", "pong"]).arguments() == []
    assert from_command_line("ping", ["--path", "/p", "-e", "pong"]).arguments() == [
        "--path",
        "/p",
        "-e",
        "pong",
    ]


def test_serve_and_the_plugin_build_the_same_status_options() -> None:
    plugin = from_command_line(
        "status", ["--path", "/s", "--pool", "www", "--max-children", "5", "-w", "active_percent=80"]
    )
    toml = target_config(
        "a",
        fcgi_wire.TcpAddress("127.0.0.1", 9000),
        {"status_path": "/s", "pool": "www", "max_children": 5, "warning": {"active_percent": 80}},
    )
    serve_cli = target_config(
        "a",
        fcgi_wire.TcpAddress("127.0.0.1", 9000),
        {"status_path": "/s", "pool": "www", "max_children": "5", "warning": ["active_percent=80"]},
    )
    assert toml.status == serve_cli.status == plugin


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"warning": {"bogus": "1"}}, "target a: warning: unknown metric 'bogus'; valid: active_processes"),
        ({"warning": ["bogus=1"]}, "target a: warning: unknown metric 'bogus'; valid: active_processes"),
        ({"critical": {"active_percent": "20:10"}}, "'20:10' is not a Nagios range"),
        ({"critical": ["active_percent=1", "active_percent=2"]}, "critical active_percent is given twice"),
        ({"max_children": 0}, "max_children must be a whole number from 1 to 2147483647, not '0'"),
        ({"max_children": True}, "max_children must be a whole number from 1 to 2147483647"),
        ({"full": "yes"}, "target a: full must be true or false, not 'yes'"),
        ({"ping_path": 5}, "target a: ping_path must be a string, not '5'"),
        ({"warning": {"longest_request": "5"}}, "a threshold on longest_request needs --full"),
        ({"frequency": 5}, "target a: unknown setting 'frequency'; known: address, critical, expect"),
        ({"warning": {"a" * 10000: "1"}}, f"unknown metric '{'a' * 40}'; valid:"),
    ],
)
def test_a_bad_setting_is_named_where_it_came_from(settings: dict, words: str) -> None:
    with pytest.raises(UsageError) as refused:
        target_config("a", fcgi_wire.TcpAddress("127.0.0.1", 9000), settings)
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("9000", fcgi_wire.TcpAddress("127.0.0.1", 9000)),
        ("0.0.0.0:9001", fcgi_wire.TcpAddress("127.0.0.1", 9001)),
        ("*:9002", fcgi_wire.TcpAddress("127.0.0.1", 9002)),
        ("[::]:9003", fcgi_wire.TcpAddress("::1", 9003)),
        ("[::1]:9004", fcgi_wire.TcpAddress("::1", 9004)),
        ("::1:9005", fcgi_wire.TcpAddress("::1", 9005)),  # FPM takes the port after the last colon
        ("fpm.example:9006", fcgi_wire.TcpAddress("fpm.example", 9006)),
        (" /run/php/php8.2-fpm.sock ", fcgi_wire.UnixAddress("/run/php/php8.2-fpm.sock")),
        ("99999", None),
        ("127.0.0.1:0", None),
        ("[::1", None),
        ("[fe80::zz]:9000", None),
        ("bad_host!:9000", None),
        ("/" + "x" * 200, None),
    ],
)
def test_fpm_listen_is_one_address_from_configuration_to_fcgi_wire(listen: str, address: Any) -> None:
    assert listen_address(listen) == address


@pytest.mark.parametrize(
    "address",
    [
        fcgi_wire.TcpAddress("127.0.0.1", 9000),
        fcgi_wire.TcpAddress("::1", 9001),
        fcgi_wire.UnixAddress("/run/php/x.sock"),
    ],
)
def test_target_arguments_are_parse_address_inverse(address: Any) -> None:
    argv = target_arguments(address)
    flags = dict(zip(argv[::2], argv[1::2]))
    assert parse_address(flags.get("-H"), flags.get("-p"), flags.get("-s")) == address


def test_discover_writes_what_the_plugin_reads_back() -> None:
    """A discovered pool's check line, parsed as the plugin parses it,
    gives the options discover built for it."""
    config = PoolConfig(
        "www",
        "/etc/php/8.2/fpm/pool.d/www.conf",
        1,
        "/etc/php/8.2/fpm/php-fpm.conf",
        "8.2",
        {
            "listen": "[::1]:9000",
            "ping.path": "/fpm-ping",
            "ping.response": "ok",
            "pm.status_path": "/fpm-status",
            "pm.max_children": "7",
        },
    )
    pool = as_pool(config)
    assert pool.address == fcgi_wire.TcpAddress("::1", 9000)
    for mode in ("ping", "status"):
        argv = pool.check_args(mode)
        assert argv[:4] == ["-H", "::1", "-p", "9000"]
        assert from_command_line(mode, argv[4:]) == pool.options(mode)
    assert pool.check_args("status")[4:] == ["--path", "/fpm-status", "--pool", "www", "--max-children", "7"]
