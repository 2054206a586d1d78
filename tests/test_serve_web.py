"""--web.config.file: TLS and basic auth for every endpoint of check_fastcgi
serve, in the Prometheus exporter-toolkit's format. Certificates made by
the openssl command, real HTTPS clients, a real Prometheus (Debian's)
scraping over TLS with basic auth, hostile files read like --config."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import bcrypt
import pytest

from tests import prometheus
from tests.fpm import FpmPool, wait_until
from tests.sidecar import Sidecar

#: Generous: a slow, loaded 2-core machine.
LIMIT = 30.0
PASSWORD = "s3cret, with a colon: too"  # noqa: S105 - a test's
#: bcrypt at its lowest cost: the tests compare many passwords.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
#: htpasswd -B writes $2y$: the same hash under another prefix.
HASH_2Y = "$2y$" + bcrypt.hashpw(b"alice's", bcrypt.gensalt(rounds=4)).decode()[4:]


def openssl(directory: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def issue(directory: Path, name: str, san: str, ca: str = "ca") -> None:
    """An EC key and a certificate signed by ``ca`` for ``san``."""
    ext = directory / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl(
        directory,
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"),
    )
    openssl(
        directory,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name),
    )


def make_ca(directory: Path, name: str) -> None:
    openssl(
        directory,
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *(
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN=check_fastcgi {name}",
        ),
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    make_ca(directory, "ca")
    make_ca(directory, "other-ca")
    issue(directory, "server", "IP:127.0.0.1,DNS:localhost")
    issue(directory, "client", "DNS:prometheus.example")
    issue(directory, "intruder", "DNS:intruder.example")
    issue(directory, "stranger", "DNS:prometheus.example", ca="other-ca")
    openssl(directory, "ec", "-in", "server.key", "-out", "encrypted.key", "-aes256", "-passout", "pass:x")
    return directory


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("web"), max_children=2, pool_name="www") as started:
        yield started


def client(certs: Path, cert: Optional[str] = None, ca: str = "ca") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / f"{ca}.crt"))
    if cert is not None:
        context.load_cert_chain(str(certs / f"{cert}.crt"), str(certs / f"{cert}.key"))
    return context


def write_config(path: Path, text: str) -> Path:
    """Replace the file at once, as an operator's tools do."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


TLS_AND_USERS = f"""\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: "{HASH}"
  alice: "{HASH_2Y}"
"""


def targets(pool: FpmPool) -> List[str]:
    return ["--target", f"www=127.0.0.1:{pool.port}"]


def basic(user: str, password: str) -> Dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_every_endpoint_is_behind_tls_and_basic_auth(certs: Path, pool: FpmPool) -> None:
    web = write_config(certs / "web.yml", TLS_AND_USERS)
    with Sidecar(
        *targets(pool), "--web.config.file", str(web), tls=client(certs), auth=("prometheus", PASSWORD)
    ) as sidecar:
        for path in ("/healthz", "/health", "/ping", "/status", "/handshake", "/metrics"):
            status, body, headers = sidecar.get(path)
            assert status == 200, (path, status, body)
            assert headers["x-frame-options"] == "deny" and headers["strict-transport-security"].startswith(
                "max"
            )
        assert sidecar.get("/healthz", basic("alice", "alice's"))[0] == 200  # htpasswd's $2y$
        refused = [
            {},
            basic("prometheus", "wrong"),
            basic("alice", PASSWORD),
            basic("mallory", PASSWORD),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Bearer " + PASSWORD},
            {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()},
            basic("prometheus", PASSWORD + "x" * 80),  # past bcrypt's 72 bytes
        ]
        for headers in refused:
            for path, method in (
                ("/healthz", "GET"),
                ("/metrics", "GET"),
                ("/nowhere", "GET"),
                ("/ping", "POST"),
            ):
                status, body, answer = sidecar.get(path, headers or {"Authorization": ""}, method=method)
                assert (status, answer.get("www-authenticate")) == (401, "Basic"), (path, headers, status)
                assert answer["x-frame-options"] == "deny" and body == "401 Unauthorized\n"
        status, _, answer = sidecar.get("/healthz", {"Authorization": ""}, method="HEAD")
        assert status == 401 and answer["www-authenticate"] == "Basic"
        plain = http.client.HTTPConnection("127.0.0.1", sidecar.port, timeout=LIMIT)
        with pytest.raises((OSError, http.client.HTTPException)):  # no HTTP on the TLS port
            plain.request("GET", "/healthz")
            plain.getresponse()
        plain.close()
        stranger = Sidecar(port=sidecar.port, tls=client(certs, ca="other-ca"), auth=("prometheus", PASSWORD))
        with pytest.raises(ssl.SSLCertVerificationError):
            stranger.get("/healthz")
        assert sidecar.stop() == 0
    assert f"listening on 127.0.0.1:{sidecar.port} (https, basic auth (2 users))" in sidecar.stderr
    assert "Traceback" not in sidecar.stderr


def refused_or_error(sidecar: Sidecar) -> bool:
    """The request did not get an answer: the TLS handshake failed, or the
    server closed the connection once it saw the client's certificate."""
    try:
        sidecar.get("/healthz")
    except (OSError, http.client.HTTPException):
        return True
    return False


def test_client_certificates_and_their_names(certs: Path, pool: FpmPool) -> None:
    web = write_config(
        certs / "mtls.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        "  client_allowed_sans: [prometheus.example]\n  min_version: TLS13\n",
    )
    with Sidecar(*targets(pool), "--web.config.file", str(web), tls=client(certs, "client")) as sidecar:
        assert sidecar.get("/metrics")[0] == 200
        for cert in (None, "intruder", "stranger"):  # none; a name not allowed; another CA
            assert refused_or_error(Sidecar(port=sidecar.port, tls=client(certs, cert))), cert
        assert sidecar.get("/healthz")[0] == 200
        assert sidecar.stop() == 0
    assert "(https, client certificates)" in sidecar.stderr and "Traceback" not in sidecar.stderr
    optional = write_config(
        certs / "optional.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n",
    )
    with Sidecar(*targets(pool), "--web.config.file", str(optional), tls=client(certs)) as sidecar:
        assert sidecar.get("/healthz")[0] == 200  # no certificate: fine
        assert Sidecar(port=sidecar.port, tls=client(certs, "client")).get("/healthz")[0] == 200
        assert refused_or_error(Sidecar(port=sidecar.port, tls=client(certs, "stranger")))


def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(
    certs: Path, pool: FpmPool, tmp_path: Path
) -> None:
    web = write_config(certs / "web.yml", TLS_AND_USERS)
    with Sidecar(
        *targets(pool), "--web.config.file", str(web), tls=client(certs), auth=("prometheus", PASSWORD)
    ) as sidecar:
        job = (
            "  - job_name: {name}\n    scheme: https\n    tls_config: {{ca_file: '{ca}'}}\n"
            "    basic_auth: {{username: prometheus, password: '{password}'}}\n"
            "    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
            + job.format(name="fpm", ca=certs / "ca.crt", password=PASSWORD, port=sidecar.port)
            + job.format(name="wrong", ca=certs / "ca.crt", password="wrong", port=sidecar.port)  # noqa: S106
        )
        with prometheus.running(config, tmp_path) as server:
            server.wait_for(
                lambda: [r["value"][1] for r in server.query('phpfpm_up{job="fpm"}')] == ["1"],
                "Prometheus scraping serve over TLS",
            )
            assert server.query('phpfpm_up{job="fpm"}')[0]["metric"]["pool"] == "www"
            assert server.query('up{job="fpm"}')[0]["value"][1] == "1"
            server.wait_for(lambda: server.query('up{job="wrong"}') != [], "the wrong password tried")
            assert server.query('up{job="wrong"}')[0]["value"][1] == "0"  # 401: no figures from it
            assert server.query('phpfpm_up{job="wrong"}') == []


def serial(sidecar: Sidecar) -> str:
    assert sidecar.tls is not None
    with (
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT) as raw,
        sidecar.tls.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return str(tls.getpeercert()["serialNumber"])


def test_a_renewed_certificate_and_a_broken_file_need_no_restart(
    certs: Path, pool: FpmPool, tmp_path: Path
) -> None:
    for name in ("ca.crt", "ca.key", "ca.srl"):
        (tmp_path / name).write_bytes((certs / name).read_bytes())
    issue(tmp_path, "server", "IP:127.0.0.1")
    web = write_config(tmp_path / "web.yml", TLS_AND_USERS)
    with Sidecar(
        *targets(pool), "--web.config.file", str(web), tls=client(certs), auth=("prometheus", PASSWORD)
    ) as sidecar:
        assert sidecar.process is not None
        pid, first = sidecar.process.pid, serial(sidecar)
        renewal = tmp_path / "renewal"
        renewal.mkdir()
        for name in ("ca.crt", "ca.key", "ca.srl"):
            (renewal / name).write_bytes((tmp_path / name).read_bytes())
        issue(renewal, "server", "IP:127.0.0.1")
        os.replace(renewal / "server.key", tmp_path / "server.key")
        os.replace(renewal / "server.crt", tmp_path / "server.crt")
        wait_until(lambda: serial(sidecar) != first, LIMIT, "the renewed certificate served")
        assert sidecar.get("/metrics")[0] == 200
        write_config(web, TLS_AND_USERS.replace("basic_auth_users:", "basic_auth_users: ["))
        wait_until(lambda: refused_or_error(sidecar), LIMIT, "connections refused while the file is broken")
        write_config(web, TLS_AND_USERS)
        wait_until(lambda: not refused_or_error(sidecar), LIMIT, "served again")
        assert sidecar.get("/healthz")[0] == 200 and sidecar.process.pid == pid
        assert sidecar.stop() == 0
    lines = sidecar.log_lines()
    # (The renewal may have been read between its key and its certificate: a line of its own.)
    broken = [line for line in lines if line.startswith("<3>--web.config.file ")]
    assert broken and all("refusing every connection until it is fixed" in line for line in broken), lines
    assert sum("not valid YAML" in line for line in broken) == 1, lines  # once, not once a connection
    assert any(line.startswith("<5>--web.config.file ") and "usable again" in line for line in lines), lines


def test_a_client_that_never_finishes_a_handshake_cannot_deny_healthz(certs: Path, pool: FpmPool) -> None:
    web = write_config(certs / "web.yml", TLS_AND_USERS)
    with Sidecar(
        *targets(pool),
        "--web.config.file",
        str(web),
        "--max-connections",
        "4",
        tls=client(certs),
        auth=("prometheus", PASSWORD),
    ) as sidecar:
        held = []
        for part in (b"", b"\x16\x03\x01\x00", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", b""):
            conn = socket.create_connection(("127.0.0.1", sidecar.port), timeout=LIMIT)
            conn.sendall(part)
            held.append(conn)
        try:
            started = time.monotonic()
            assert sidecar.get("/healthz", timeout=LIMIT)[0] == 200
            assert time.monotonic() - started < 5  # not after a handshake's REQUEST_TIMEOUT
        finally:
            for conn in held:
                conn.close()
        assert sidecar.get("/metrics")[0] == 200
        assert sidecar.stop() == 0
    assert "Traceback" not in sidecar.stderr


def test_an_empty_file_is_plain_http_and_users_alone_are_basic_auth(certs: Path, pool: FpmPool) -> None:
    empty = write_config(certs / "empty.yml", "")
    with Sidecar(*targets(pool), "--web.config.file", str(empty)) as sidecar:
        assert sidecar.get("/healthz")[0] == 200
    users = write_config(certs / "users.yml", f'basic_auth_users:\n  prometheus: "{HASH}"\n')
    with Sidecar(*targets(pool), "--web.config.file", str(users), auth=("prometheus", PASSWORD)) as sidecar:
        assert sidecar.get("/metrics")[0] == 200
        assert sidecar.get("/metrics", {"Authorization": ""})[0] == 401
        assert sidecar.stop() == 0
    assert "<4>basic_auth_users without tls_server_config: passwords cross the network" in sidecar.stderr


def _fifo(directory: Path) -> str:
    path = directory / "fifo.yml"
    if not path.exists():
        os.mkfifo(path)
    return str(path)


def _yaml(text: str) -> Callable[[Path], str]:
    def make(directory: Path) -> str:
        return str(write_config(directory / "hostile.yml", text))

    return make


def _bytes(data: bytes) -> Callable[[Path], str]:
    def make(directory: Path) -> str:
        path = directory / "hostile.yml"
        path.write_bytes(data)
        return str(path)

    return make


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
HOSTILE: List[Tuple[str, Callable[[Path], str], str]] = [
    ("dev-zero", lambda directory: "/dev/zero", "/dev/zero: not a regular file"),
    ("fifo", _fifo, "fifo.yml: not a regular file"),
    ("directory", str, ": not a regular file"),
    (
        "missing",
        lambda directory: str(directory / "nonexistent.yml"),
        "nonexistent.yml: no such file or directory",
    ),
    ("2-mb", _bytes(b"# padding\n" * 200_000), "hostile.yml: larger than 1 MiB"),
    ("not-utf-8", _bytes(b"# \xff\xfe\n"), "not valid YAML: not UTF-8"),
    ("not-yaml", _yaml("tls_server_config: [\n"), "not valid YAML: "),
    ("deep", _yaml("a: " + "[" * 100_000), "not valid YAML: "),
    ("a-list", _yaml("- a\n- b\n"), "a mapping of names expected"),
    ("typo", _yaml("basic_auth_user: {}\n"), "unknown setting 'basic_auth_user'; known: tls_server_config"),
    ("rate-limit", _yaml("rate_limit: {burst: 1}\n"), "rate_limit is not supported"),
    ("ciphers", _yaml(TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"), "cipher_suites is not supported"),
    ("inline-cert", _yaml("tls_server_config:\n  cert: x\n"), "give the certificate as cert_file"),
    ("plain-password", _yaml("basic_auth_users:\n  admin: hunter2\n"), "'admin': not a bcrypt hash"),
    ("no-key", _yaml("tls_server_config:\n  cert_file: server.crt\n"), "tls_server_config: missing key_file"),
    ("no-cert-file", _yaml(TLS.replace("server.crt", "gone.crt")), "gone.crt: no such file or directory"),
    (
        "cert-is-dev-zero",
        _yaml(TLS.replace("server.crt", "/dev/zero")),
        "cert_file /dev/zero: not a regular file",
    ),
    ("wrong-key", _yaml(TLS.replace("server.key", "client.key")), "not a certificate and its key"),
    ("encrypted-key", _yaml(TLS.replace("server.key", "encrypted.key")), "key_file is encrypted"),
    ("min-version", _yaml(TLS + "  min_version: TLS14\n"), "min_version 'TLS14': give one of TLS10"),
    (
        "versions",
        _yaml(TLS + "  min_version: TLS13\n  max_version: TLS12\n"),
        "min_version is above max_version",
    ),
    (
        "unverified-client-certs",
        _yaml(TLS + "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n"),
        "Python's ssl cannot ask for a client certificate without verifying it",
    ),
    ("bogus-client-auth", _yaml(TLS + "  client_auth_type: Bogus\n"), "invalid client_auth_type 'Bogus'"),
    ("ca-without-policy", _yaml(TLS + "  client_ca_file: ca.crt\n"), "client_ca_file is given without"),
    (
        "policy-without-ca",
        _yaml(TLS + "  client_auth_type: RequireAndVerifyClientCert\n"),
        "RequireAndVerifyClientCert needs client_ca_file",
    ),
    (
        "ca-is-no-ca",
        _yaml(TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.srl\n"),
        "client_ca_file holds no PEM certificate",
    ),
    (
        "sans-without-required-certs",
        _yaml(
            TLS
            + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [a]\n"
        ),
        "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert",
    ),
    (
        "header",
        _yaml("http_server_config:\n  headers: {X-Powered-By: x}\n"),
        "header 'X-Powered-By' cannot be set",
    ),
    (
        "header-value",
        _yaml("http_server_config:\n  headers: {X-Frame-Options: allow}\n"),
        "header X-Frame-Options: give one of deny, sameorigin",
    ),
    ("http2", _yaml("http_server_config:\n  http2: maybe\n"), "http2 must be true or false"),
]


@pytest.mark.parametrize(
    ("make", "message"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_a_hostile_web_config_is_one_line_and_exit_2(
    certs: Path, make: Callable[[Path], str], message: str
) -> None:
    path = make(certs)
    # A regression must not take the machine's memory with it (/dev/zero).
    command = ["prlimit", f"--as={1 << 30}", *Sidecar("-H", "127.0.0.1", "--web.config.file", path).command]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert time.monotonic() - started < 20
    assert done.returncode == 2, done
    assert done.stderr.startswith("check_fastcgi serve: --web.config.file "), done.stderr
    assert message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
