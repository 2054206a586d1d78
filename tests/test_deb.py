"""The Debian package on a fresh Debian 12: a minbase chroot made by
debootstrap from the mirror apt is configured with, where
``apt-get install ./check-fastcgi_*.deb`` brings the dependencies from
Debian (python3, python3-nagiosplugin 1.3.2, python3-prometheus-client);
then every mode, serve, the unit and Icinga 2's ITL, against a php-fpm pool
on this host (its socket directory bound into the chroot read-only, its TCP
listener on the shared 127.0.0.1).

Needs root, debootstrap and the network to the Debian mirror, and takes
minutes: a plain run does not collect it. ``make deb-proof`` (tools/deb-proof)
builds the package and runs this module with CHECK_FASTCGI_DEB set to the
.deb. The debootstrapped root is cached as a tarball in
/var/cache/check-fastcgi-debootstrap (CHECK_FASTCGI_DEBOOTSTRAP_CACHE), with
the .debs apt downloads, so a rerun only unpacks and installs.
"""

from __future__ import annotations

import glob
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest

from tests.fpm import FpmPool, free_port, wait_until

#: The .deb to try; a plain run does not collect this module (tests/conftest.py PROOFS).
DEB = os.environ.get("CHECK_FASTCGI_DEB", "")

SUITE = "bookworm"
CACHE = Path(os.environ.get("CHECK_FASTCGI_DEBOOTSTRAP_CACHE", "/var/cache/check-fastcgi-debootstrap"))
TARBALL = CACHE / f"{SUITE}-minbase.tar.gz"
#: Bound at the chroot's /var/cache/apt/archives: apt keeps what it fetched.
ARCHIVES = CACHE / "archives"
#: Where the chroot sees the pool's socket directory.
SOCKETS = "/run/fpm-proof"
PLUGIN = "/usr/lib/nagios/plugins/check_fastcgi"
ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": "/root",
}
#: A slow mirror or a loaded 2-core machine: apt gets its time.
APT_TIMEOUT = 900


def _deb822_sources() -> Iterator[List[str]]:
    """(uri, suites..., "|", components...) of each enabled deb stanza."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text()):
            fields: Dict[str, List[str]] = {}
            for line in stanza.splitlines():
                if line.strip() and not line.startswith(("#", " ", "\t")) and ":" in line:
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
            if fields.get("enabled", ["yes"])[0] != "no" and "deb" in fields.get("types", []):
                for uri in fields.get("uris", []):
                    yield [uri, *fields.get("suites", []), "|", *fields.get("components", [])]


def _one_line_sources() -> Iterator[List[str]]:
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if not Path(path).exists():
            continue
        for line in Path(path).read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb":
                yield [words[1], words[2], "|", *words[3:]]


def apt_mirror() -> str:
    """The first http(s) source of SUITE's main component that this host's
    apt uses (deb822 .sources or one-line .list files)."""
    for source in [*_deb822_sources(), *_one_line_sources()]:
        uri, rest = source[0], source[1:]
        suites, components = rest[: rest.index("|")], rest[rest.index("|") + 1 :]
        if uri.startswith(("http://", "https://")) and SUITE in suites and "main" in components:
            return uri
    raise RuntimeError(f"no http(s) source for Debian {SUITE} main in /etc/apt")


def mounts_under(root: Path) -> List[str]:
    """Mount points at or below ``root``, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


class Chroot:
    """A Debian root under /var/tmp, with /proc and the apt cache mounted;
    ``close()`` unmounts everything below it and deletes it only then."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="check-fastcgi-chroot.", dir="/var/tmp"))

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def argv(self, argv: Sequence[str], user: Optional[str] = None) -> List[str]:
        spec = [f"--userspec={user}"] if user else []
        return [
            "chroot",
            *spec,
            str(self.root),
            "/usr/bin/env",
            "-i",
            *(f"{k}={v}" for k, v in ENV.items()),
            *argv,
        ]

    def run(
        self, *argv: str, user: Optional[str] = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(argv, user),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done

    def popen(self, *argv: str, user: Optional[str] = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(argv, user),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def mount(self, *args: str) -> None:
        subprocess.run(["mount", *args], check=True)

    def bind(self, source: Path, inside: str, readonly: bool = False) -> None:
        target = self.path(inside)
        target.mkdir(parents=True, exist_ok=True)
        self.mount("--bind", str(source), str(target))
        if readonly:
            self.mount("-o", "remount,bind,ro", str(target))

    def unmount(self, inside: str) -> None:
        subprocess.run(["umount", str(self.path(inside))], check=True)

    def close(self) -> None:
        for point in mounts_under(self.root):
            if subprocess.run(["umount", point], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", point], check=False)
        left = mounts_under(self.root)
        if left:  # deleting through a mount would delete the host's files
            raise RuntimeError(f"still mounted, {self.root} kept: {', '.join(left)}")
        shutil.rmtree(self.root)


def bootstrap(chroot: Chroot, mirror: str) -> None:
    """The minbase root: unpacked from the cached tarball, or debootstrapped
    once and cached."""
    if TARBALL.exists():
        subprocess.run(["tar", "-C", str(chroot.root), "--numeric-owner", "-xzf", str(TARBALL)], check=True)
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "debootstrap.log"
    with log.open("w") as out:
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(chroot.root), mirror],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=APT_TIMEOUT,
            check=False,
        )
    assert not mounts_under(chroot.root), "debootstrap left mounts behind"
    assert done.returncode == 0, f"debootstrap failed, see {log}"
    chroot.run("apt-get", "clean")
    partial = TARBALL.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(chroot.root), "--numeric-owner", "-czf", str(partial), "."], check=True)
    partial.rename(TARBALL)


@pytest.fixture(scope="module")
def chroot() -> Iterator[Chroot]:
    """A fresh Debian 12 with check-fastcgi installed by apt from the .deb."""
    assert os.geteuid() == 0, "debootstrap, chroot and mount need root"
    assert shutil.which("debootstrap"), (
        "debootstrap is missing: apt-get install debootstrap (make deb-proof does)"
    )
    deb = Path(DEB).resolve()
    assert deb.is_file(), f"CHECK_FASTCGI_DEB={DEB}: no such file"
    mirror = apt_mirror()
    made = Chroot()
    try:
        started = time.monotonic()
        bootstrap(made, mirror)
        made.root.chmod(0o755)  # mkdtemp's 0700 would keep nobody, nagios and man out of /
        made.path("/etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
        shutil.copyfile("/etc/resolv.conf", made.path("/etc/resolv.conf"))
        # Debian's way to keep maintainer scripts from starting services.
        policy = made.path("/usr/sbin/policy-rc.d")
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made.mount("-t", "proc", "proc", str(made.path("/proc")))
        # A pty of its own for dpkg's terminal log, none of the host's.
        made.mount(
            "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts", str(made.path("/dev/pts"))
        )
        ARCHIVES.mkdir(parents=True, exist_ok=True)
        made.bind(ARCHIVES, "/var/cache/apt/archives")
        made.run("apt-get", "update", "-q", timeout=APT_TIMEOUT)
        shutil.copyfile(deb, made.path(f"/tmp/{deb.name}"))
        # As the README says: apt resolves the dependencies from Debian.
        made.run("sh", "-c", "cd /tmp && apt-get install -y -q ./check-fastcgi_*.deb", timeout=APT_TIMEOUT)
        print(f"chroot {made.root}: Debian {SUITE} with {deb.name} in {time.monotonic() - started:.0f}s")
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def pool(chroot: Chroot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("deb-pool"), max_children=3) as started:
        chroot.bind(started.socket_dir, SOCKETS, readonly=True)
        try:
            yield started
        finally:
            chroot.unmount(SOCKETS)


def targets(pool: FpmPool) -> Dict[str, List[str]]:
    """The pool's Unix socket as the chroot sees it, and its TCP listener."""
    return {"unix": ["-s", f"{SOCKETS}/{pool.socket_path.name}"], "tcp": pool.targets()["tcp"]}


def get(port: int, path: str, timeout: float = 10) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def body_of(port: int, path: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def answers(port: int, path: str, status: int) -> bool:
    try:
        return get(port, path).status == status
    except OSError:
        return False


def stop(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    process.terminate()
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_apt_brought_debians_own_dependencies(chroot: Chroot) -> None:
    shown = chroot.run(
        "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n",
        "check-fastcgi", "python3-nagiosplugin", "python3-prometheus-client",
    ).stdout  # fmt: skip
    versions = {line.split()[0]: line.split()[1:] for line in shown.splitlines()}
    assert versions["check-fastcgi"] == ["0.2.0", "ii"], shown
    assert versions["python3-nagiosplugin"][0].startswith("1.3.2"), shown  # Debian 12's
    assert versions["python3-prometheus-client"][1] == "ii", shown  # a Recommends apt installs
    where = chroot.run("python3", "-c", "import nagiosplugin; print(nagiosplugin.__file__)").stdout
    assert where.startswith("/usr/lib/python3/dist-packages/nagiosplugin/")
    conffiles = chroot.run("dpkg-query", "-W", "-f", "${Conffiles}", "check-fastcgi").stdout
    assert "/etc/nagios-plugins/config/fastcgi.cfg" in conffiles
    assert "/etc/check-fastcgi/serve.toml" in conffiles
    for path in [
        PLUGIN,
        "/usr/share/icinga2/include/plugins-contrib.d/fastcgi.conf",
        "/lib/systemd/system/check-fastcgi-serve.service",
        "/usr/share/man/man1/check_fastcgi.1.gz",
        "/usr/share/doc/check-fastcgi/examples/monit/fastcgi-ping.monitrc",
        "/usr/share/doc/check-fastcgi/examples/zabbix/userparameter_fastcgi.conf",
    ]:
        assert chroot.path(path).exists(), path
    # The packaged modules, compiled by py3compile, run as anyone.
    assert chroot.run("check_fastcgi", "--version", user="nobody:nogroup", check=False).stdout.startswith(
        "check_fastcgi 0.2.0 (Python 3.11"
    )


@pytest.mark.parametrize("listener", ["unix", "tcp"])
@pytest.mark.parametrize(
    ("mode", "expected"),
    [("handshake", "answered FCGI_GET_VALUES"), ("ping", "/ping answered 200 OK"), ("status", "pool www")],
)
def test_every_mode_from_the_chroot(
    chroot: Chroot, pool: FpmPool, listener: str, mode: str, expected: str
) -> None:
    # The socket is root's (mode 0660); over TCP the plugin runs as nobody.
    user = None if listener == "unix" else "nobody:nogroup"
    done = chroot.run(PLUGIN, mode, *targets(pool)[listener], "-t", "20", user=user, check=False)
    assert done.returncode == 0, done
    assert done.stdout.startswith("FASTCGI OK - ") and expected in done.stdout, done
    assert done.stderr == "", done


def test_discover_reads_debians_fpm_configuration(chroot: Chroot, pool: FpmPool) -> None:
    """php8.2-fpm's file layout, with the pool pointed at the test pool's socket."""
    conf = chroot.path("/etc/php/8.2/fpm")
    (conf / "pool.d").mkdir(parents=True)
    (conf / "php-fpm.conf").write_text("[global]\ninclude=/etc/php/8.2/fpm/pool.d/*.conf\n")
    (conf / "pool.d" / "www.conf").write_text(
        f"[www]\nlisten = {targets(pool)['unix'][1]}\npm = static\npm.max_children = 3\n"
        "ping.path = /ping\npm.status_path = /status\n"
    )
    try:
        done = chroot.run(PLUGIN, "discover", check=False)
        assert done.returncode == 0, done
        assert "www" in done.stdout and targets(pool)["unix"][1] in done.stdout, done
    finally:
        shutil.rmtree(chroot.path("/etc/php"))


def serve(chroot: Chroot, *args: str) -> tuple:
    port = free_port()
    process = chroot.popen(PLUGIN, "serve", "--listen", f"127.0.0.1:{port}", *args, user="nobody:nogroup")
    return process, port


def test_serve_on_debians_prometheus_client(chroot: Chroot, pool: FpmPool) -> None:
    process, port = serve(chroot, "--target", f"www=127.0.0.1:{pool.port}", "-t", "10")
    try:
        wait_until(lambda: process.poll() is not None or answers(port, "/ping", 200), 60, "serve's /ping")
        assert process.poll() is None, stop(process)
        assert body_of(port, "/ping").startswith("FASTCGI OK - ")
        metrics = body_of(port, "/metrics")
        # The exporter read the status page through Debian's prometheus_client.
        assert re.search(r'^phpfpm_up\{[^}]*target="www"[^}]*\} 1\.0$', metrics, re.M), metrics[:2000]
    finally:
        done = stop(process)
    assert done.returncode == 0, done


def test_the_shipped_serve_toml_starts_the_sidecar(chroot: Chroot) -> None:
    """The conffile as installed (its socket does not exist here: /ping is
    503, the sidecar itself is up)."""
    process, port = serve(chroot, "--config", "/etc/check-fastcgi/serve.toml")
    try:
        wait_until(
            lambda: process.poll() is not None or answers(port, "/healthz", 200), 60, "serve's /healthz"
        )
        assert process.poll() is None, stop(process)
        assert get(port, "/ping").status == 503
    finally:
        done = stop(process)
    assert done.returncode == 0, done
    assert "for www=/run/php/php8.2-fpm.sock" in done.stderr, done


def test_the_unit_passes_systemd_analyze_verify(chroot: Chroot) -> None:
    # systemd for its unit files and systemd-analyze, man-db for
    # Documentation=man:check_fastcgi(1); no systemd runs in the chroot.
    chroot.run(
        "apt-get", "install", "-y", "-q", "--no-install-recommends", "systemd", "man-db", timeout=APT_TIMEOUT
    )
    unit = "/lib/systemd/system/check-fastcgi-serve.service"
    done = chroot.run("systemd-analyze", "verify", unit, check=False)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done
    security = chroot.run("systemd-analyze", "security", "--offline=true", unit, check=False)
    level = re.search(r"Overall exposure level for check-fastcgi-serve.service: ([0-9.]+)", security.stdout)
    assert level, security
    print(level.group(0))
    assert float(level.group(1)) < 2.0, security.stdout
    page = chroot.run("man", "check_fastcgi", check=False)
    for mode in ("handshake", "ping", "status", "discover", "serve"):
        assert re.search(rf"^   {mode}$", page.stdout, re.M), (mode, page.stdout[:3000])


def test_icinga2_finds_the_command_through_the_itl(chroot: Chroot, pool: FpmPool) -> None:
    """Icinga 2's stock constants and ITL includes, one Service with
    check_command = "fastcgi", and no include of our file: the package's
    plugins-contrib.d/fastcgi.conf is what defines it."""
    chroot.run(
        "apt-get", "install", "-y", "-q", "--no-install-recommends", "icinga2-bin", timeout=APT_TIMEOUT
    )
    conf = chroot.path("/tmp/icinga2-proof/icinga2.conf")
    conf.parent.mkdir(mode=0o755)
    conf.write_text(
        f"""include "/etc/icinga2/constants.conf"
include <itl>
include <plugins>
include <plugins-contrib>
object Host "php-host" {{
  check_command = "dummy"
  address = "127.0.0.1"
}}
object Service "php-fpm-ping" {{
  host_name = "php-host"
  check_command = "fastcgi"
  vars.fastcgi_socket = "{targets(pool)["unix"][1]}"
}}
"""
    )
    conf.chmod(0o644)
    done = chroot.run("icinga2", "daemon", "-C", "-c", "/tmp/icinga2-proof/icinga2.conf", check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Instantiated 1 Service." in done.stdout, done.stdout[-3000:]
    command = chroot.run("icinga2", "object", "list", "--type", "CheckCommand", "--name", "fastcgi").stdout
    assert "declared in '/usr/share/icinga2/include/plugins-contrib.d/fastcgi.conf'" in command, command
    assert f'"{PLUGIN}"' in command, command


def test_without_the_recommended_prometheus_client_serve_says_apt(chroot: Chroot) -> None:
    chroot.run("apt-get", "remove", "-y", "-q", "python3-prometheus-client", timeout=APT_TIMEOUT)
    done = chroot.run(PLUGIN, "serve", "--target", "www=127.0.0.1:1", check=False)
    assert (done.returncode, done.stdout) == (2, ""), done
    assert (
        done.stderr == "check_fastcgi serve: needs prometheus_client: apt install python3-prometheus-client\n"
    )
    assert chroot.run(PLUGIN, "--version", check=False).stdout.startswith("check_fastcgi 0.2.0")


def test_purge_leaves_nothing(chroot: Chroot) -> None:
    chroot.run("apt-get", "purge", "-y", "-q", "check-fastcgi", timeout=APT_TIMEOUT)
    for path in [
        "/usr/share/check-fastcgi",
        PLUGIN,
        "/etc/check-fastcgi",
        "/etc/nagios-plugins/config/fastcgi.cfg",
    ]:
        assert not chroot.path(path).exists(), path
