"""A real Zabbix 6.0 on loopback, from Debian's packages, for the proof that
contrib/zabbix works end to end (tests/test_zabbix_server.py,
tools/zabbix-proof).

Everything runs from generated configurations in one temporary directory
and is stopped afterwards; no package's own service is used or enabled:

- a throwaway PostgreSQL cluster (initdb, postgres as the postgres user,
  fsync off), with the schema Debian ships in /usr/share/zabbix-server-pgsql/
  (schema, images, data);
- zabbix_server with its own zabbix_server.conf, dropping to the zabbix user,
  few processes and short cache intervals;
- the frontend as Debian installs it (/usr/share/zabbix) under php-fpm and
  nginx (Debian's example location block), so the API is api_jsonrpc.php
  over HTTP as an operator reaches it. The frontend reads its configuration
  from the fixed path /etc/zabbix/zabbix.conf.php: its php-fpm runs in a
  private mount namespace where /etc/zabbix is the temporary directory's
  copy, so the host's /etc is never written;
- zabbix_agentd with its own conf and a real Include of
  contrib/zabbix/userparameter_fastcgi.conf. The agent drops to the zabbix
  user and runs the plugin as the single file (tools/build-zipapp) with
  Debian's python3, since the project's virtualenv may live where the
  zabbix user cannot read.

Root only: PostgreSQL refuses to run as root, the daemons drop to their
users, and the mount namespace needs CAP_SYS_ADMIN.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from tests.engines import INSTALLED_PLUGIN, ROOT
from tests.fpm import FpmPool, free_port, wait_until

SCHEMA = Path("/usr/share/zabbix-server-pgsql")
FRONTEND = Path("/usr/share/zabbix")
FRONTEND_CONF = Path("/etc/zabbix")
NGINX_EXAMPLE = Path("/usr/share/doc/zabbix-frontend-php/examples/nginx.conf")
CONTRIB = ROOT / "contrib" / "zabbix"

#: The Debian packages the proof runs, by the command each provides.
COMMANDS = {
    "zabbix_server": "zabbix-server-pgsql",
    "zabbix_agentd": "zabbix-agent",
    "nginx": "nginx",
    "unshare": "util-linux",
}


def missing() -> List[str]:
    """What is not installed, by Debian package, for the skip message."""
    absent = [
        package
        for command, package in COMMANDS.items()
        if not shutil.which(command, path="/usr/sbin:/usr/bin:/sbin:/bin")
    ]
    if not (FRONTEND / "api_jsonrpc.php").exists():
        absent.append("zabbix-frontend-php")
    if not postgres_bin():
        absent.append("postgresql")
    if not php_fpm():
        absent.append("php-fpm")
    if not glob.glob("/etc/php/*/fpm/conf.d/*pgsql.ini"):
        absent.append("php-pgsql")
    if not (SCHEMA / "schema.sql.gz").exists():
        absent.append("zabbix-server-pgsql (schema)")
    return absent


def postgres_bin() -> Optional[Path]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def php_fpm() -> Optional[str]:
    found = sorted(glob.glob("/usr/sbin/php-fpm[0-9]*"))
    return found[-1] if found else None


def version(command: Sequence[str], pattern: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "?"


def versions() -> Dict[str, str]:
    pg = postgres_bin()
    return {
        "zabbix_server": version(["zabbix_server", "-V"], r"\(Zabbix\) (\S+)"),
        "zabbix_agentd": version(["zabbix_agentd", "-V"], r"\(Zabbix\) (\S+)"),
        "postgresql": version([str(pg / "postgres"), "--version"], r"(\d+\.\d+)") if pg else "?",
        "php-fpm": version([php_fpm() or "php-fpm", "-v"], r"PHP (\S+)"),
        "nginx": version(["nginx", "-v"], r"nginx/(\S+)"),
        "python3 (agent)": version(["/usr/bin/python3", "--version"], r"Python (\S+)"),
    }


class ProofPools(FpmPool):
    """FpmPool's three pools (127.0.0.1, [::1], a Unix socket; each with a
    ping and a status page), plus one without a ping page on a Unix socket
    and one without a status page on TCP: what the template's overrides
    leave out. The zabbix user reaches the sockets through their group."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, max_children=3, pool_settings={"listen.group": "zabbix"})
        self.port_nostatus = self.port
        while self.port_nostatus == self.port:  # a port just released can come back
            self.port_nostatus = free_port()

    @property
    def noping_socket(self) -> Path:
        return self.socket_dir / "noping.sock"

    def config(self) -> str:
        extra = (
            "\n[noping]\n"
            f"listen = {self.noping_socket}\nlisten.group = zabbix\n"
            "pm = static\npm.max_children = 1\npm.status_path = /status\n"
            "\n[nostatus]\n"
            f"listen = 127.0.0.1:{self.port_nostatus}\n"
            "pm = static\npm.max_children = 1\nping.path = /ping\n"
        )
        return super().config() + extra


class ApiError(RuntimeError):
    pass


class Api:
    """Zabbix's JSON-RPC API at api_jsonrpc.php, as any client calls it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token: Optional[str] = None
        self._id = 0

    def call(self, method: str, params: Any = None, timeout: float = 120) -> Any:
        self._id += 1
        request: Dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}, "id": self._id}
        if self.token and method not in ("user.login", "apiinfo.version"):
            request["auth"] = self.token
        http = urllib.request.Request(  # noqa: S310 - our own loopback URL
            self.url, data=json.dumps(request).encode(), headers={"Content-Type": "application/json-rpc"}
        )
        with urllib.request.urlopen(http, timeout=timeout) as reply:  # noqa: S310 - our own loopback URL
            answer = json.loads(reply.read())
        if "error" in answer:
            error = answer["error"]
            raise ApiError(f"{method}: {error.get('message')} {error.get('data')}")
        return answer["result"]

    def login(self, user: str = "Admin", password: str = "zabbix") -> None:  # noqa: S107 - Zabbix's default
        self.token = self.call("user.login", {"username": user, "password": password})


class ZabbixStack:
    """PostgreSQL, zabbix_server, the frontend (php-fpm + nginx) and
    zabbix_agentd, each on a free loopback port, in ``workdir``."""

    def __init__(self, workdir: Path, discover_config: Path, log: Any = None) -> None:
        self.workdir = workdir
        self.discover_config = discover_config
        self.log = log or (lambda text: None)
        self.password = secrets.token_hex(12)
        # Start the pools first: a port they listen on is never picked here.
        self.ports = dict(zip(("postgres", "nginx", "frontend_fpm"), distinct(free_port)))
        # Zabbix takes ListenPort from 1024 to 32767 only: below Linux's ephemeral range.
        self.ports.update(zip(("server", "agent"), distinct(zabbix_port, 2)))
        self.processes: Dict[str, subprocess.Popen[bytes]] = {}
        self.timings: Dict[str, float] = {}
        self.api = Api(f"http://127.0.0.1:{self.ports['nginx']}/zabbix/api_jsonrpc.php")

    # --- helpers -------------------------------------------------------------------

    def _dir(self, name: str, owner: Optional[str] = None, mode: int = 0o755) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        if owner:
            shutil.chown(path, owner, owner)
        return path

    def _spawn(self, name: str, command: List[str], env: Optional[Dict[str, str]] = None, **kw: Any) -> None:
        out = (self.workdir / f"{name}.out").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env or {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
                # Its own process group: what is left of it can be killed as one.
                start_new_session=True,
                **kw,
            )
        finally:
            out.close()

    def _alive(self, name: str) -> bool:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {self.tail(name)}")
        return True

    def tail(self, name: str, lines: int = 15) -> str:
        """The end of a daemon's logs, for failure messages."""
        texts = []
        for path in [*sorted(self.workdir.glob(f"{name}*/*.log")), self.workdir / f"{name}.out"]:
            try:
                texts.append(f"{path.name}: " + " / ".join(path.read_text().splitlines()[-lines:]))
            except OSError:
                continue
        return "\n".join(texts) or "no log"

    def _timed(self, what: str, started: float) -> None:
        self.timings[what] = round(time.monotonic() - started, 1)
        self.log(f"{what}: {self.timings[what]} s")

    # --- PostgreSQL --------------------------------------------------------------------

    def _psql(self, *args: str, user: str = "postgres", stdin: Optional[bytes] = None) -> str:
        pg = postgres_bin()
        assert pg is not None
        sockets = self.workdir / "postgres" / "sockets"
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PGPASSWORD": self.password}
        if user == "postgres":  # peer authentication on the cluster's own socket
            command = [str(pg / "psql"), "-h", str(sockets), "-p", str(self.ports["postgres"]), "-U", user]
            kw: Dict[str, Any] = {"user": "postgres", "group": "postgres", "extra_groups": []}
        else:  # the password over TCP, as the server and the frontend connect
            command = [str(pg / "psql"), "-h", "127.0.0.1", "-p", str(self.ports["postgres"]), "-U", user]
            kw = {}
        done = subprocess.run(
            [*command, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args],
            input=stdin,
            capture_output=True,
            env=env,
            timeout=600,
            check=False,
            cwd="/",
            **kw,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {' '.join(args)[:80]}: {done.stderr.decode(errors='replace')[-2000:]}")
        return done.stdout.decode()

    def start_postgres(self) -> None:
        started = time.monotonic()
        pg = postgres_bin()
        assert pg is not None
        base = self._dir("postgres", "postgres", 0o700)
        sockets = self._dir("postgres/sockets", "postgres")
        data = base / "data"
        as_postgres: Dict[str, Any] = {
            "user": "postgres",
            "group": "postgres",
            "extra_groups": [],
            "cwd": "/",
        }
        subprocess.run(
            [
                str(pg / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            timeout=120,
            **as_postgres,
        )
        self._spawn(
            "postgres",
            [
                str(pg / "postgres"),
                "-D",
                str(data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={self.ports['postgres']}",
                "-c",
                f"unix_socket_directories={sockets}",
                # A throwaway cluster: durability buys nothing here.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=60",
            ],
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            **as_postgres,
        )

        def ready() -> bool:
            self._alive("postgres")
            return (
                subprocess.run(
                    [
                        str(pg / "pg_isready"),
                        "-q",
                        "-U",
                        "postgres",
                        "-h",
                        str(sockets),
                        "-p",
                        str(self.ports["postgres"]),
                    ],
                    timeout=30,
                    check=False,
                ).returncode
                == 0
            )

        wait_until(ready, 120, f"postgres ({self.tail('postgres')})", interval=0.2)
        self._psql("-c", f"CREATE ROLE zabbix LOGIN PASSWORD '{self.password}'")
        self._psql("-c", "CREATE DATABASE zabbix OWNER zabbix ENCODING 'UTF8' TEMPLATE template0")
        self._timed("postgres cluster up", started)
        started = time.monotonic()
        # As Debian's README.Debian says: schema, images, data, as the zabbix role.
        sql = b"".join(
            gzip.decompress((SCHEMA / f"{name}.sql.gz").read_bytes()) for name in ("schema", "images", "data")
        )
        self._psql("-d", "zabbix", "-f", "-", user="zabbix", stdin=sql)
        # Statistics for the planner: without them, linking a template with
        # trigger dependencies runs one query for minutes.
        self._psql("-d", "zabbix", "-c", "ANALYZE", user="zabbix")
        self._timed("schema loaded", started)

    # --- zabbix_server ----------------------------------------------------------------

    def start_server(self) -> None:
        started = time.monotonic()
        run = self._dir("server", "zabbix")
        conf = run / "zabbix_server.conf"
        settings = {
            "LogType": "file",
            "LogFile": run / "zabbix_server.log",
            "LogFileSize": 0,
            "PidFile": run / "zabbix_server.pid",
            "SocketDir": run,
            "TmpDir": run,
            "DBHost": "127.0.0.1",
            "DBPort": self.ports["postgres"],
            "DBName": "zabbix",
            "DBUser": "zabbix",
            "DBPassword": self.password,
            "ListenIP": "127.0.0.1",
            "ListenPort": self.ports["server"],
            # Few processes (two cores, shared): what the proof's items need.
            "StartPollers": 3,
            "StartPollersUnreachable": 1,
            "StartPreprocessors": 1,
            "StartHistoryPollers": 1,
            "StartTrappers": 2,
            "StartPingers": 0,
            "StartDiscoverers": 0,
            "StartHTTPPollers": 0,
            "StartTimers": 1,
            "StartEscalators": 1,
            "StartAlerters": 1,
            "StartLLDProcessors": 1,
            "StartDBSyncers": 1,
            "StartODBCPollers": 0,
            "StartReportWriters": 0,
            "HousekeepingFrequency": 0,
            # A new host, a discovered item: in the cache within seconds.
            "CacheUpdateFrequency": 5,
            "Timeout": 10,
            "UnreachablePeriod": 30,
            "UnreachableDelay": 5,
            "UnavailableDelay": 10,
            "User": "zabbix",
        }
        conf.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        conf.chmod(0o640)
        shutil.chown(conf, "root", "zabbix")
        self._spawn("server", ["zabbix_server", "-f", "-c", str(conf)])
        log = run / "zabbix_server.log"

        def ready() -> bool:
            self._alive("server")
            return log.exists() and "server #0 started [main process]" in log.read_text(errors="replace")

        wait_until(ready, 120, f"zabbix_server ({self.tail('server')})", interval=0.2)
        self._timed("zabbix_server started", started)

    # --- the frontend ---------------------------------------------------------------------

    def start_frontend(self) -> None:
        started = time.monotonic()
        front = self._dir("frontend")
        etc = self._dir("frontend/etc")
        sessions = self._dir("frontend/sessions", "www-data", 0o700)
        # Debian's example configuration, pointed at this database and server.
        example = (FRONTEND / "conf" / "zabbix.conf.php.example").read_text()
        values = {
            "$DB['TYPE']": "'POSTGRESQL'",
            "$DB['SERVER']": "'127.0.0.1'",
            "$DB['PORT']": f"'{self.ports['postgres']}'",
            "$DB['PASSWORD']": f"'{self.password}'",
            "$ZBX_SERVER_NAME": "'check_fastcgi proof'",
        }
        for name, value in values.items():
            example = re.sub(
                rf"^{re.escape(name)}(\s*)= .*;$", rf"{name}\g<1>= {value};", example, flags=re.M
            )
        example = example.replace("// $ZBX_SERVER\t\t\t= '';", "$ZBX_SERVER\t\t\t= '127.0.0.1';")
        example = example.replace(
            "// $ZBX_SERVER_PORT\t\t= '';", f"$ZBX_SERVER_PORT\t\t= '{self.ports['server']}';"
        )
        conf_php = etc / "zabbix.conf.php"
        conf_php.write_text(example)
        conf_php.chmod(0o640)
        shutil.chown(conf_php, "root", "www-data")
        fpm_conf = front / "php-fpm.conf"
        fpm_conf.write_text(
            "[global]\n"
            f"pid = {front / 'php-fpm.pid'}\nerror_log = {front / 'php-fpm.log'}\ndaemonize = no\n"
            "[zabbix]\nuser = www-data\ngroup = www-data\n"
            f"listen = 127.0.0.1:{self.ports['frontend_fpm']}\n"
            "pm = static\npm.max_children = 2\n"
            # What Debian's apache example sets for the frontend.
            "php_value[max_execution_time] = 300\nphp_value[memory_limit] = 128M\n"
            "php_value[post_max_size] = 16M\nphp_value[upload_max_filesize] = 2M\n"
            "php_value[max_input_time] = 300\nphp_value[date.timezone] = UTC\n"
            f"php_value[session.save_path] = {sessions}\n"
            f"php_admin_value[error_log] = {front / 'php-errors.log'}\nphp_admin_flag[log_errors] = on\n"
        )
        # /etc/zabbix is this directory's etc/ for the frontend's php-fpm alone.
        self._spawn(
            "frontend",
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                'mount --bind "$0" /etc/zabbix && exec "$@"',
                str(etc),
                str(php_fpm()),
                "--nodaemonize",
                "--fpm-config",
                str(fpm_conf),
            ],
        )
        fpm_log = front / "php-fpm.log"
        wait_until(
            lambda: (
                self._alive("frontend")
                and fpm_log.exists()
                and "ready to handle connections" in fpm_log.read_text()
            ),
            60,
            f"the frontend's php-fpm ({self.tail('frontend')})",
            interval=0.1,
        )
        web = self._dir("nginx")
        location = NGINX_EXAMPLE.read_text()
        # Debian's block, minus its redirect to https (loopback, no certificate).
        location = re.sub(r"\s*if \(\$scheme ~ \^http:\)\{.*?\}\n", "\n", location, flags=re.S)
        location = re.sub(
            r"fastcgi_pass\s+\S+;", f"fastcgi_pass 127.0.0.1:{self.ports['frontend_fpm']};", location
        )
        temp = "\n".join(
            f"  {kind}_temp_path {web / kind};"
            for kind in ("client_body", "fastcgi", "proxy", "uwsgi", "scgi")
        )
        nginx_conf = web / "nginx.conf"
        nginx_conf.write_text(
            f"daemon off;\nuser www-data;\nworker_processes 1;\npid {web / 'nginx.pid'};\n"
            f"error_log {web / 'error.log'};\nevents {{ worker_connections 64; }}\n"
            "http {\n  include /etc/nginx/mime.types;\n"
            f"  access_log {web / 'access.log'};\n{temp}\n"
            "  client_max_body_size 16m;\n  client_body_buffer_size 1m;\n"
            f"  server {{\n  listen 127.0.0.1:{self.ports['nginx']};\n  server_name localhost;\n"
            f"{location}\n  }}\n}}\n"
        )
        self._spawn("nginx", ["nginx", "-e", str(web / "error.log"), "-p", str(web), "-c", str(nginx_conf)])

        def answers() -> bool:
            self._alive("nginx")
            try:
                return bool(self.api.call("apiinfo.version", timeout=10))
            except OSError:
                return False

        wait_until(answers, 60, f"the API ({self.tail('nginx')} {self.tail('frontend')})", interval=0.2)
        self._timed("frontend answering", started)

    # --- zabbix_agentd -----------------------------------------------------------------

    def start_agent(self) -> None:
        started = time.monotonic()
        agent = self._dir("agent", "zabbix")
        state = self._dir("agent/state", "zabbix", 0o700)
        plugin = agent / "check_fastcgi.pyz"
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build-zipapp"), str(plugin)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        plugin.chmod(0o755)
        shipped = (CONTRIB / "userparameter_fastcgi.conf").read_text()
        assert INSTALLED_PLUGIN in shipped and "discover --format json" in shipped
        # The shipped file, changed in two places only: where the plugin is,
        # and which FPM configuration discover reads.
        params = shipped.replace(INSTALLED_PLUGIN, str(plugin)).replace(
            "discover --format json", f"discover --format json --config {self.discover_config}"
        )
        include = agent / "userparameter_fastcgi.conf"
        include.write_text(params)
        conf = agent / "zabbix_agentd.conf"
        conf.write_text(
            f"LogType=file\nLogFile={agent / 'zabbix_agentd.log'}\nLogFileSize=0\n"
            f"PidFile={agent / 'zabbix_agentd.pid'}\n"
            f"Server=127.0.0.1\nListenIP=127.0.0.1\nListenPort={self.ports['agent']}\n"
            "Hostname=fastcgi-proof\nStartAgents=3\nTimeout=10\nUser=zabbix\n"
            f"Include={include}\n"
        )
        # The plugin's state files (rates) go to the temporary directory.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "XDG_STATE_HOME": str(state)}
        self._spawn("agent", ["zabbix_agentd", "-f", "-c", str(conf)], env=env)
        log = agent / "zabbix_agentd.log"
        wait_until(
            lambda: self._alive("agent") and log.exists() and "started [listener #" in log.read_text(),
            60,
            f"zabbix_agentd ({self.tail('agent')})",
            interval=0.1,
        )
        self._timed("zabbix_agentd started", started)

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> ZabbixStack:
        try:
            self.start_postgres()
            self.start_server()
            self.start_frontend()
            self.start_agent()
            self.api.login()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Every process this stack started, newest first, by its own pid."""
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                # SIGINT is PostgreSQL's fast shutdown: it ends its sessions too.
                process.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            # Children that outlived their parent (a backend, a worker).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def __enter__(self) -> ZabbixStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def distinct(pick: Any, count: int = 3) -> List[int]:
    """``count`` different free ports from ``pick`` (each probe closes its
    socket, so the same port can come back)."""
    ports: List[int] = []
    while len(ports) < count:
        port = pick()
        if port not in ports:
            ports.append(port)
    return ports


def zabbix_port() -> int:
    """A free loopback port that Zabbix accepts as ListenPort (1024-32767)."""
    for _ in range(200):
        port = secrets.randbelow(32767 - 20000) + 20000
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32767")


def make_workdir() -> Path:
    """A directory the daemons' users can traverse (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="zabbix-proof-"))
    path.chmod(0o755)
    return path


# --- what the proof does through the API ---------------------------------------------------

#: What configuration.import may create and update, as the frontend's import
#: dialog offers it.
IMPORT_RULES = {
    "groups": {"createMissing": True},
    "templates": {"createMissing": True, "updateExisting": True},
    "valueMaps": {"createMissing": True, "updateExisting": True},
    "items": {"createMissing": True, "updateExisting": True},
    "discoveryRules": {"createMissing": True, "updateExisting": True},
    "triggers": {"createMissing": True, "updateExisting": True},
    "templateLinkage": {"createMissing": True},
}

#: Short intervals for the proof, as host macros (the template's defaults are
#: 1m, 1h, 3m and 10m). An uptime minimum of 0 keeps the fresh pools from
#: raising "has been restarted", so every problem seen is the down pool's.
PROOF_MACROS = {
    "{$PHP_FPM.INTERVAL}": "10s",
    "{$PHP_FPM.LLD.INTERVAL}": "20s",
    "{$PHP_FPM.NODATA}": "2m",
    "{$PHP_FPM.UPTIME.MIN}": "0",
}


def import_template(api: Api, text: str) -> Any:
    return api.call("configuration.import", {"format": "yaml", "source": text, "rules": IMPORT_RULES})


def create_host(
    api: Api, name: str, template: str, agent_port: int, macros: Dict[str, str]
) -> Dict[str, str]:
    groups = api.call("hostgroup.get", {"filter": {"name": ["check_fastcgi proof"]}})
    if groups:
        groupid = groups[0]["groupid"]
    else:
        groupid = api.call("hostgroup.create", {"name": "check_fastcgi proof"})["groupids"][0]
    templateid = api.call("template.get", {"filter": {"host": [template]}})[0]["templateid"]
    hostid = api.call(
        "host.create",
        {
            "host": name,
            "groups": [{"groupid": groupid}],
            "templates": [{"templateid": templateid}],
            "interfaces": [
                {"type": 1, "main": 1, "useip": 1, "ip": "127.0.0.1", "dns": "", "port": str(agent_port)}
            ],
            "macros": [{"macro": macro, "value": value} for macro, value in macros.items()],
        },
    )["hostids"][0]
    return {"hostid": hostid, "host": name}


def disable_default_host(api: Api) -> None:
    """The "Zabbix server" host in Debian's data.sql polls an agent on
    127.0.0.1:10050 that is not ours: nothing of this proof."""
    for host in api.call("host.get", {"filter": {"host": ["Zabbix server"]}, "output": ["hostid"]}):
        api.call("host.update", {"hostid": host["hostid"], "status": 1})
