"""FastCGI servers other than PHP-FPM, each started for the tests:
fcgiwrap running a CGI script, php-cgi under spawn-fcgi, and a WSGI
application served by flup."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import fcgi_wire
from tests.fpm import free_port, wait_until

HELLO_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello from cgi\\n'\n"
HELLO_PHP = '<?php echo "hello from php-cgi\\n";\n'
WSGI_APP = """\
import sys
from flup.server.fcgi import WSGIServer

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from wsgi\\n"]

WSGIServer(app, bindAddress=("127.0.0.1", int(sys.argv[1]))).run()
"""


class Server:
    """A FastCGI server process; ready once it answers FCGI_GET_VALUES
    (a bare connect would hold fcgiwrap's worker for its 2 s drop-dead wait)."""

    name = "server"
    script_name = "hello"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.script = ""

    @property
    def address(self) -> fcgi_wire.Address:
        return fcgi_wire.TcpAddress("127.0.0.1", self.port)

    @property
    def args(self) -> List[str]:
        return ["-H", "127.0.0.1", "-p", str(self.port)]

    def command(self) -> List[str]:
        raise NotImplementedError

    def environment(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
        try:
            fcgi_wire.get_values(self.address, timeout=1)
        except fcgi_wire.FastCGIError:
            return False
        return True

    def __enter__(self) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.environment(),
            start_new_session=True,  # so stop() reaches the workers it forks
        )
        try:
            wait_until(self._answers, 15, self.name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class Fcgiwrap(Server):
    name = "fcgiwrap"
    script_name = "/hello.cgi"

    def command(self) -> List[str]:
        script = self.workdir / "hello.cgi"
        script.write_text(HELLO_CGI)
        script.chmod(0o755)
        self.script = str(script)
        return ["fcgiwrap", "-c", "2", "-s", f"tcp:127.0.0.1:{self.port}"]


class PhpCgi(Server):
    name = "php-cgi (spawn-fcgi)"
    script_name = "/hello.php"

    def command(self) -> List[str]:
        script = self.workdir / "hello.php"
        script.write_text(HELLO_PHP)
        self.script = str(script)
        # spawn-fcgi execs without a PATH search, so the program needs its path.
        php_cgi = shutil.which("php-cgi") or "/usr/bin/php-cgi"
        return ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(self.port), "--", php_cgi, "-n"]

    def environment(self) -> dict:
        return {**super().environment(), "PHP_FCGI_CHILDREN": "2"}


class FlupWsgi(Server):
    name = "flup WSGI"
    script_name = "/app"

    def command(self) -> List[str]:
        app = self.workdir / "wsgi_app.py"
        app.write_text(WSGI_APP)
        self.script = str(app)
        return [sys.executable, str(app), str(self.port)]


SERVERS = [Fcgiwrap, PhpCgi, FlupWsgi]
