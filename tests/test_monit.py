"""monit-examples/ in a real monit (Debian's), as a daemon with a 1 s cycle
and its HTTP interface on loopback, against a test pool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.engines import ROOT, for_test_pool
from tests.fpm import FpmPool, free_port, wait_until

EXAMPLES = sorted((ROOT / "monit-examples").glob("*.monitrc"))


def monit_status(control: Path) -> Dict[str, Dict[str, str]]:
    """`monit status`, as {service: {field: value}}."""
    out = subprocess.run(
        ["monit", "-c", str(control), "status"], capture_output=True, text=True, timeout=10
    ).stdout
    services: Dict[str, Dict[str, str]] = {}
    current: Dict[str, str] = {}
    for line in out.splitlines():
        header = re.match(r"^(Program|Remote Host|System) '([^']+)'", line)
        if header:
            current = services.setdefault(header.group(2), {})
        elif line.startswith("  ") and current is not None:
            field, _, value = line.strip().partition("  ")
            current[field] = value.strip()
    return services


@pytest.fixture(scope="module")
def monit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    workdir = tmp_path_factory.mktemp("monit")
    pool = FpmPool(workdir / "fpm", max_children=3).start()
    examples = workdir / "examples"
    examples.mkdir()
    restart_marker = workdir / "restarted"
    for example in EXAMPLES:
        text = for_test_pool(
            example.read_text(),
            pool,
            {"/usr/sbin/service php8.2-fpm restart": f"/usr/bin/touch {restart_marker}"},
        )
        (examples / example.name).write_text(text)
    # The status example again, with a threshold it must cross, to see
    # WARNING kept apart from CRITICAL.
    warning = (examples / "fastcgi-status.monitrc").read_text()
    warning = warning.replace("php-fpm-pool ", "php-fpm-pool-warning ").replace(
        "-w active_percent=80", "-w active_percent=1"
    )
    (examples / "warning-variant.monitrc").write_text(warning)
    control = workdir / "monitrc"
    control.write_text(
        "set daemon 1\n"
        f"set logfile {workdir / 'monit.log'}\n"
        f"set pidfile {workdir / 'monit.pid'}\n"
        f"set idfile {workdir / 'monit.id'}\n"
        f"set statefile {workdir / 'monit.state'}\n"
        f"set httpd port {free_port()} and use address 127.0.0.1\n"
        "    allow 127.0.0.1\n"
        f"include {examples}/*.monitrc\n"
    )
    control.chmod(0o600)  # monit refuses a control file others can read
    daemon = subprocess.Popen(
        ["monit", "-c", str(control), "-I"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield control, pool, restart_marker
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        pool.stop()
        shutil.rmtree(examples, ignore_errors=True)


PROGRAMS = ["php-fpm-ping", "php-fpm-pool", "fastcgi-handshake", "php-fpm-alive"]


def test_examples_parse() -> None:
    for example in EXAMPLES:
        assert "check " in example.read_text()
    assert {p.name for p in EXAMPLES} >= {
        "fastcgi-ping.monitrc",
        "fastcgi-status.monitrc",
        "fastcgi-send-expect.monitrc",
    }


def test_monit_runs_the_examples_then_sees_the_pool_fail(monit: tuple) -> None:
    control, pool, restart_marker = monit

    def all_ok() -> bool:
        status = monit_status(control)
        return (
            all(
                status.get(name, {}).get("status") == "OK"
                and status[name].get("last output", "").startswith("FASTCGI OK - ")
                for name in PROGRAMS
            )
            and status.get("php-fpm-fastcgi", {}).get("status") == "OK"
        )

    wait_until(all_ok, 30, "monit showing every example OK", interval=0.25)
    status = monit_status(control)
    assert status["php-fpm-ping"]["last exit value"] == "0"
    assert re.match(
        r"FASTCGI OK - \S+ /ping answered 200 OK in [\d.]+ ms: 'pong'",
        status["php-fpm-ping"]["last output"],
    )
    assert status["php-fpm-pool"]["last output"].startswith("FASTCGI OK - pool www: ")
    assert "protocol generic" in status["php-fpm-fastcgi"]["port response time"]

    # WARNING is not CRITICAL: exit 1, and it alerts only after 3 cycles.
    wait_until(
        lambda: monit_status(control).get("php-fpm-pool-warning", {}).get("status") == "Status failed",
        30,
        "the warning variant to fail",
        interval=0.25,
    )
    warned = monit_status(control)["php-fpm-pool-warning"]
    assert warned["last exit value"] == "1"
    assert warned["last output"].startswith("FASTCGI WARNING - pool www: active_percent is ")

    pool.stop()

    def all_failed() -> bool:
        status = monit_status(control)
        return (
            all(status[name].get("status") == "Status failed" for name in PROGRAMS)
            and status["php-fpm-fastcgi"].get("status") == "Connection failed"
        )

    wait_until(all_failed, 30, "monit showing the failures", interval=0.25)
    status = monit_status(control)
    assert status["php-fpm-ping"]["last exit value"] == "2"
    assert status["php-fpm-ping"]["last output"].startswith(
        f"FASTCGI CRITICAL - connect to {pool.socket_path}: no such socket file"
    )
    assert (
        status["fastcgi-handshake"]["last output"]
        == f"FASTCGI CRITICAL - connect to 127.0.0.1:{pool.port}: connection refused"
    )
    # The restart recipe fires after three CRITICAL cycles.
    wait_until(restart_marker.exists, 30, "the restart recipe's exec", interval=0.25)


def test_every_example_line_fits_monits_512_bytes(tmp_path: Path) -> None:
    """monit keeps 512 bytes of a program's output. The examples' first
    lines, perfdata included and with rates present, must fit."""
    import json  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    with FpmPool(tmp_path / "fpm", max_children=3) as pool:
        env = {"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path / "state")}
        for example in EXAMPLES:
            found = re.search(r'with path "([^"]+)"', for_test_pool(example.read_text(), pool))
            if not found:
                continue  # the send/expect variant runs no program
            command = shlex.split(found.group(1))
            subprocess.run(command, capture_output=True, env=env, check=False)
            for state in (tmp_path / "state").glob("*/*.json"):
                sample = json.loads(state.read_text())
                sample["sample"]["time"] -= 60  # as the next cycle would find it
                state.write_text(json.dumps(sample))
            output = subprocess.run(command, capture_output=True, text=True, env=env, check=False).stdout
            first = output.splitlines()[0]
            assert first.startswith("FASTCGI OK - "), (example.name, first)
            assert len(output.encode()) <= 512, (example.name, len(output.encode()))
            if "status" in command:
                assert "accepted_conn_rate=" in first  # measured at its longest
