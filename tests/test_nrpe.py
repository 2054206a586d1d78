"""NRPE, for a Nagios that checks a web host's PHP-FPM from afar: contrib/nrpe
and `discover --format nrpe` in Debian's nrpe (nagios-nrpe-server), asked by
Debian's check_nrpe (nagios-nrpe-plugin) over loopback; and the Nagios side,
contrib/nagios/fastcgi-nrpe-services.cfg and `discover --format nagios
--nrpe`, accepted by nagios4 and run by it through Debian's own check_nrpe
command.

NRPE refuses to run as root, so its commands run as a real unprivileged user
(``local_user``): the plugin is the zipapp in a directory anyone may read,
run by Debian's python3, and the pool's socket is open to everyone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.conftest import CHECK
from tests.engines import INSTALLED_PLUGIN, ROOT, for_test_pool
from tests.fpm import FpmPool, free_port, wait_until
from tests.nagios import nagios_cfg, service_status
from tests.users import LocalUser

NRPE = "/usr/sbin/nrpe"
CHECK_NRPE = "/usr/lib/nagios/plugins/check_nrpe"
#: Debian's check_nrpe command for Nagios: -H $HOSTADDRESS$ -c $ARG1$, no port.
DEBIAN_CHECK_NRPE = Path("/etc/nagios-plugins/config/check_nrpe.cfg")
#: The port check_nrpe asks when it is given none.
NRPE_PORT = 5666
CONTRIB = ROOT / "contrib"


@pytest.fixture(scope="module")
def public() -> Iterator[Path]:
    """A directory the NRPE user can read: the zipapp and a script that
    prints the arguments it was given."""
    directory = Path(tempfile.mkdtemp(prefix="nrpe-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(directory / "check_fastcgi.pyz")],
            check=True,
            capture_output=True,
            timeout=120,
        )
        argv = directory / "argv"
        argv.write_text("#!/usr/bin/python3 -I\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
        argv.chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("nrpe-pool"), pool_settings={"listen.mode": "0666"}) as started:
        yield started


def loopback_with_free(port: int) -> str:
    """A loopback address of its own on which ``port`` is free, so that NRPE
    listens on its usual port and Nagios reaches it with Debian's check_nrpe
    command, which names no port."""
    for third in range(1, 255):
        address = f"127.0.{(os.getpid() + third) % 254 + 1}.2"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        return address
    raise RuntimeError(f"no loopback address with port {port} free")


class Nrpe:
    """`nrpe -f` (in the foreground, our child) from a generated
    configuration as Debian's: an nrpe.d directory of commands, and
    dont_blame_nrpe=0."""

    def __init__(self, commands: str, user: LocalUser, address: str = "127.0.0.1", port: int = 0) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="nrpe-run-", dir="/tmp"))
        os.chown(self.workdir, user.uid, user.gid)
        self.address = address
        self.port = port or free_port(address)
        nrpe_d = self.workdir / "nrpe.d"
        nrpe_d.mkdir()
        (nrpe_d / "fastcgi.cfg").write_text(commands)
        self.log = self.workdir / "nrpe.log"
        settings = {
            "server_address": address,
            "server_port": self.port,
            "nrpe_user": user.name,
            "nrpe_group": user.name,
            "allowed_hosts": f"127.0.0.1,{address}",
            "dont_blame_nrpe": 0,
            "allow_bash_command_substitution": 0,
            "command_timeout": 30,
            "connection_timeout": 60,
            "pid_file": self.workdir / "nrpe.pid",
            "log_file": self.log,
            "debug": 1,
            "include_dir": f"{nrpe_d}/",
        }
        self.config = self.workdir / "nrpe.cfg"
        self.config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        self.process: Optional[subprocess.Popen[bytes]] = None

    def ask(self, command: Optional[str] = None, *args: str) -> subprocess.CompletedProcess:
        """check_nrpe, as Nagios runs it."""
        line = [CHECK_NRPE, "-H", self.address, "-p", str(self.port), "-t", "30"]
        line += ["-c", command] if command else []
        line += ["-a", *args] if args else []
        return subprocess.run(line, capture_output=True, text=True, timeout=60)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"nrpe exited with {self.process.returncode}: {self.log_tail()}")
        return self.ask().stdout.startswith("NRPE v")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "no log"

    def __enter__(self) -> Nrpe:
        self.process = subprocess.Popen(
            [NRPE, "-c", str(self.config), "-f"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(self._ready, 30, "nrpe", interval=0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def discover(*args: str) -> str:
    done = subprocess.run([CHECK, "discover", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    return done.stdout


def command_names(text: str) -> List[str]:
    return re.findall(r"^command\[([^\]]+)\]=", text, re.M)


def test_the_contrib_commands_run_under_nrpe(pool: FpmPool, public: Path, local_user: LocalUser) -> None:
    commands = for_test_pool(
        (CONTRIB / "nrpe" / "fastcgi.cfg").read_text(),
        pool,
        {INSTALLED_PLUGIN: str(public / "check_fastcgi.pyz")},
    )
    names = command_names(commands)
    assert names == ["check_fastcgi_www_ping", "check_fastcgi_www_status", "check_fastcgi_www_handshake"]
    with Nrpe(commands, local_user) as nrpe:
        answers = {name: nrpe.ask(name) for name in names}
    for name, answer in answers.items():
        assert answer.returncode == 0 and answer.stdout.startswith("FASTCGI OK - "), (name, answer)
    assert answers["check_fastcgi_www_ping"].stdout.startswith(
        f"FASTCGI OK - {pool.socket_path} /ping answered"
    )
    assert "active_percent=" in answers["check_fastcgi_www_status"].stdout
    assert ";80;95;0;100" in answers["check_fastcgi_www_status"].stdout


def test_discovered_commands_run_and_take_no_arguments(
    pool: FpmPool, public: Path, local_user: LocalUser
) -> None:
    commands = discover(
        "--config",
        str(pool.workdir / "php-fpm.conf"),
        "--format",
        "nrpe",
        "--plugin",
        str(public / "check_fastcgi.pyz"),
    )
    names = command_names(commands)
    assert names == [
        f"check_fastcgi_{name}_{mode}" for name in ("www", "www6", "www-unix") for mode in ("ping", "status")
    ]
    with Nrpe(commands, local_user) as nrpe:
        answers = {name: nrpe.ask(name) for name in names}
        # dont_blame_nrpe=0: a request that carries arguments is refused.
        refused = nrpe.ask("check_fastcgi_www_ping", "-H", "192.0.2.1")
        log = nrpe.log_tail()
    for name, answer in answers.items():
        assert answer.returncode == 0 and answer.stdout.startswith("FASTCGI OK - "), (name, answer)
    assert answers["check_fastcgi_www-unix_ping"].stdout.startswith(f"FASTCGI OK - {pool.socket_path} /ping")
    assert answers["check_fastcgi_www6_status"].stdout.startswith("FASTCGI OK - pool www6: ")
    assert refused.returncode != 0 and "FASTCGI" not in refused.stdout, refused
    assert "Request contained command arguments" in log


def hostile_config(directory: Path) -> Path:
    """Pools whose values a shell, or NRPE's macros, would take as syntax."""
    config = directory / "php-fpm.conf"
    config.write_text(
        "[global]\n"
        '[quotes]\nlisten = "/tmp/it\'s $HOME `id` $(id) $ARG1$ &|<>\\ *.sock"\nping.path = /ping\n'
        "ping.response = 'say \"$$\" ;x $ARG1$ ~'\n"
        "[8.2 www]\nlisten = 9801\nping.path = /ping\n"
        "[8.2_www]\nlisten = 9802\nping.path = /ping\n"
        "[long]\nlisten = 9803\nping.path = /ping\nping.response = " + "x" * 2100 + "\n"
    )
    return config


def test_values_reach_the_plugin_as_they_are(public: Path, local_user: LocalUser, tmp_path: Path) -> None:
    """NRPE runs a command line through /bin/sh after its own $ macros:
    every quote, $, backtick and glob arrives as one argument, unchanged;
    names are unique after cleaning; a line too long for NRPE is left out
    with a comment, and the rest still loads."""
    config = hostile_config(tmp_path)
    commands = discover("--config", str(config), "--format", "nrpe", "--plugin", str(public / "argv"))
    names = command_names(commands)
    assert names == [
        "check_fastcgi_quotes_ping",
        "check_fastcgi_8.2_www_ping",
        "check_fastcgi_8.2_www_ping_2",
    ]
    assert "# check_fastcgi_long_ping: left out, its NRPE command would be longer than" in commands
    with Nrpe(commands, local_user) as nrpe:
        answers = {name: nrpe.ask(name) for name in names}
        log = nrpe.log_tail()
    argv: Dict[str, List[str]] = {}
    for name, answer in answers.items():
        assert answer.returncode == 0, (name, answer, log)
        argv[name] = json.loads(answer.stdout)
    assert argv["check_fastcgi_quotes_ping"] == [
        "ping",
        "-s",
        "/tmp/it's $HOME `id` $(id) $ARG1$ &|<>\\ *.sock",
        "-e",
        'say "$$" ;x $ARG1$ ~',
        "-t",
        "8",
    ]
    assert argv["check_fastcgi_8.2_www_ping_2"] == ["ping", "-H", "127.0.0.1", "-p", "9802", "-t", "8"]
    # What the shell makes of each line, once NRPE has turned $$ into $, is what ran.
    for line in commands.splitlines():
        if line.startswith("command["):
            name, command = line[len("command[") :].split("]=", 1)
            assert shlex.split(command.replace("$$", "$"))[1:] == argv[name]


def test_nagios_takes_the_nrpe_services(public: Path, tmp_path: Path) -> None:
    """contrib's services and discover's, with Debian's check_nrpe command:
    those left out of the NRPE commands are left out here too."""
    done = subprocess.run(
        [
            "nagios4",
            "-v",
            str(
                nagios_cfg(
                    tmp_path, CONTRIB / "nagios" / "fastcgi-nrpe-services.cfg", extra=[DEBIAN_CHECK_NRPE]
                )
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Total Warnings: 0" in done.stdout and "Checked 2 services." in done.stdout
    services = tmp_path / "discovered.cfg"
    text = discover(
        "--config", str(hostile_config(tmp_path)), "--format", "nagios", "--nrpe", "--host-name", "web1"
    )
    services.write_text(text)
    assert re.findall(r"check_command\s+(\S+)", text) == [
        "check_nrpe!check_fastcgi_quotes_ping",
        "check_nrpe!check_fastcgi_8.2_www_ping",
        "check_nrpe!check_fastcgi_8.2_www_ping_2",
    ]
    assert "# PHP-FPM long ping: left out, its NRPE command would be longer than" in text
    done = subprocess.run(
        ["nagios4", "-v", str(nagios_cfg(tmp_path, services, extra=[DEBIAN_CHECK_NRPE]))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Total Warnings: 0" in done.stdout and "Checked 3 services." in done.stdout


def test_nagios_runs_the_checks_through_nrpe(
    pool: FpmPool, public: Path, local_user: LocalUser, tmp_path: Path
) -> None:
    """Nagios -> Debian's check_nrpe command -> NRPE on its own port -> the
    plugin -> the pool, with what discover wrote on both sides."""
    fpm_config = str(pool.workdir / "php-fpm.conf")
    plugin = str(public / "check_fastcgi.pyz")
    commands = discover("--config", fpm_config, "--format", "nrpe", "--plugin", plugin)
    services = tmp_path / "services.cfg"
    services.write_text(
        discover(
            "--config", fpm_config, "--format", "nagios", "--nrpe", "--host-name", "web1", "--plugin", plugin
        )
    )
    address = loopback_with_free(NRPE_PORT)
    seen: Dict[str, Dict[str, str]] = {}
    with Nrpe(commands, local_user, address, NRPE_PORT):
        cfg = nagios_cfg(tmp_path, services, address=address, extra=[DEBIAN_CHECK_NRPE])
        daemon = subprocess.Popen(["nagios4", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def checked() -> bool:
            # Nagios deletes status.dat when it stops: keep what was read.
            seen.update(service_status(tmp_path / "status.dat"))
            return len(seen) == 6 and all(s.get("has_been_checked") == "1" for s in seen.values())

        try:
            wait_until(checked, 90, "nagios running the services through nrpe", interval=0.25)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    for name, status in seen.items():
        assert status["current_state"] == "0", (name, status)
        assert status["plugin_output"].startswith("FASTCGI OK - "), (name, status)
    assert seen["PHP-FPM www-unix ping"]["plugin_output"].startswith(f"FASTCGI OK - {pool.socket_path} /ping")
