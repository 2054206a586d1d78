"""discover against a hostile local user (SPEC section 11).

Root runs ``check_fastcgi discover``, and engines then run what it wrote as
root (monit) or as the monitoring user. Each test here plays a real second
user (``local_user``: created for the session, removed after) with real
processes titled as FPM masters and real files of theirs, and hands what
root printed to the engine that would load it (``monit -t``, ``icinga2
daemon -C``, ``nagios4 -v``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.conftest import CHECK, run_check
from tests.engines import ROOT
from tests.fpm import find_php_fpm, wait_until
from tests.icinga2 import defines, icinga2, perfdata_lines, validate
from tests.nagios import nagios_cfg
from tests.users import LocalUser

#: What an injected monit block, Nagios service or Icinga 2 object would be called.
INJECTED = "pwned"
#: The lines of a file only root may read (the tests run as root).
SHADOW = [line for line in Path("/etc/shadow").read_text().splitlines() if line.strip()]


def discover(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """discover as root, with nothing of the host's own FPM: an empty --root."""
    return subprocess.run(
        [CHECK, "discover", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **(env or {})},
    )


@contextlib.contextmanager
def titled_as_master(user: LocalUser, config: str) -> Iterator[int]:
    """A process of ``user`` whose title is an FPM master's (perl sets $0
    over its whole argument area, as FPM does with its title)."""
    title = f"php-fpm: master process ({config})"
    process = user.popen(["perl", "-e", "$0 = shift; sleep 300", title])
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        wait_until(lambda: cmdline.read_bytes().startswith(title.encode()), 15, "the fake master's title")
        yield process.pid
    finally:
        process.kill()
        process.wait()


def good_config(directory: Path, port: int = 9701) -> Path:
    """A master configuration of root's own, with one pool."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "php-fpm.conf"
    config.write_text(
        f"[global]\n[good]\nlisten = 127.0.0.1:{port}\nping.path = /ping\npm.status_path = /status\n"
    )
    return config


def monit_check(text: str, workdir: Path) -> subprocess.CompletedProcess:
    control = workdir / "monitrc"
    control.write_text(
        f"set daemon 60\nset pidfile {workdir / 'm.pid'}\nset idfile {workdir / 'm.id'}\n"
        f"set statefile {workdir / 'm.state'}\n" + text
    )
    control.chmod(0o600)
    return subprocess.run(["monit", "-t", "-c", str(control)], capture_output=True, text=True, timeout=30)


def monit_names(text: str) -> List[str]:
    return re.findall(r"^check program (\S+)", text, re.M)


# --- a local user's fake master ---------------------------------------------------------------------


def test_a_fake_master_cannot_inject_a_monit_check(local_user: LocalUser, tmp_path: Path) -> None:
    """The finding: a directory name with newlines and a monit statement,
    printed raw in a problem comment, became a check that monit ran as root."""
    evil_dir = f'x\ncheck program {INJECTED} with path "/tmp/p.sh"\n    if status != 0 then alert\n#'
    local_user.write(f"{evil_dir}/p.conf", "not a pool\n")
    config = local_user.write(
        "x.conf",
        f"[global]\ninclude={local_user.home}/x*/*.conf\n[{INJECTED}]\nlisten = /root/{INJECTED}.sock\n",
    )
    good = good_config(tmp_path / "etc")
    with titled_as_master(local_user, str(config)) as pid:
        done = discover("--config", str(good), "--from-running", "--format", "monit", "--plugin", CHECK)
    assert done.returncode == 0, done
    assert INJECTED not in done.stdout
    assert (
        f"check_fastcgi discover: skipped the master with pid {pid}: its process belongs to {local_user.name}"
        in done.stderr
    )
    # The machine's own FPM, if it runs one, may add its pools; no one else's.
    assert {"php-fpm-good-ping", "php-fpm-good-status"} <= set(monit_names(done.stdout))
    checked = monit_check(done.stdout, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_fake_master_cannot_have_root_print_a_secret(local_user: LocalUser, tmp_path: Path) -> None:
    """include=/etc/shadow in a user's master: root read it and printed
    each line as a problem, in every format."""
    config = local_user.write("shadow.conf", "[global]\ninclude=/etc/shadow\n")
    good = good_config(tmp_path / "etc")
    with titled_as_master(local_user, str(config)):
        for output_format in ("table", "json", "icinga2", "nagios", "monit"):
            done = discover("--config", str(good), "--from-running", "--format", output_format)
            assert done.returncode == 0, done
            assert not any(line in done.stdout + done.stderr for line in SHADOW), output_format
            assert "shadow" not in done.stdout


def test_a_fake_master_gives_serve_no_target(local_user: LocalUser, tmp_path: Path) -> None:
    """serve --discover took other users' masters as targets (the sidecar
    then sends FastCGI wherever they say)."""
    from tests.sidecar import Sidecar  # noqa: PLC0415

    config = local_user.write("serve.conf", "[global]\n[theirs]\nlisten = 127.0.0.1:9\nping.path = /ping\n")
    root = tmp_path / "root"
    good_config(root / "etc" / "php" / "8.2" / "fpm")
    with titled_as_master(local_user, str(config)) as pid:
        sidecar = Sidecar("--discover", "--discover-root", str(root))
        with sidecar:
            status, text, _ = sidecar.get("/theirs/ping")
            assert status == 404 and "8.2-good" in text, text
    assert any(f"skipped the master with pid {pid}" in line for line in sidecar.log_lines())


# --- what root's own configuration may still hold --------------------------------------------------


def test_problem_lines_never_quote_a_file(tmp_path: Path) -> None:
    """Root's own configuration that includes a file it should not: the
    lines are problems that name the file and line, never the content."""
    config = tmp_path / "php-fpm.conf"
    config.write_text("[global]\ninclude=/etc/shadow\ninclude=/etc/passwd\n[good]\nlisten = 9702\n")
    for output_format in ("table", "json", "monit"):
        done = discover("--config", str(config), "--format", output_format)
        assert done.returncode == 0, done
        assert not any(line in done.stdout for line in SHADOW), output_format
        assert "/etc/passwd:1: not a setting (KEY = VALUE)" in done.stdout


def test_no_variable_of_roots_environment_reaches_the_output(tmp_path: Path) -> None:
    """${VAR} was expanded from root's own environment: a secret there came
    out as {#PING_RESPONSE} and then in command lines that ps shows."""
    config = tmp_path / "php-fpm.conf"
    config.write_text("[global]\n[env]\nlisten = 9703\nping.path = /ping\nping.response = ${CFCGI_SECRET}\n")
    done = discover("--config", str(config), "--format", "json", env={"CFCGI_SECRET": "hunter2"})
    assert done.returncode == 0, done
    assert "hunter2" not in done.stdout
    problems = json.loads(done.stdout)["problems"]
    assert f"{config}:5: ping.response uses an environment variable, which only FPM knows" in problems


def test_a_running_masters_variables_stay_unknown(tmp_path: Path) -> None:
    """FPM expands ${VAR} from its own environment, and overwrites that
    environment with its title: /proc/PID/environ is all NUL bytes. So the
    value is a problem, never filled in from ours."""
    run = tmp_path / "run"
    run.mkdir()
    config = tmp_path / "php-fpm.conf"
    config.write_text(
        f"[global]\npid = {run}/env.pid\nerror_log = {run}/env.log\ndaemonize = no\n"
        f"[envpool]\nlisten = {run}/${{CFCGI_SOCKET}}.sock\npm = static\npm.max_children = 1\n"
    )
    master = subprocess.Popen(
        [find_php_fpm(), "-n", "--nodaemonize", "--fpm-config", str(config), "--allow-to-run-as-root"],
        env={"PATH": "/usr/bin:/bin", "CFCGI_SOCKET": "from-the-master"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until((run / "from-the-master.sock").exists, 15, "php-fpm with ${VAR} in listen")
        assert set(Path(f"/proc/{master.pid}/environ").read_bytes()) <= {0}
        done = discover(
            "--root",
            str(tmp_path),
            "--from-running",
            "--format",
            "json",
            env={"CFCGI_SOCKET": "ours"},
        )
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=15)
    assert "ours" not in done.stdout
    assert f"{config}:6: listen uses an environment variable, which only FPM knows" in done.stdout


def test_proc_sys_and_dev_are_never_read(tmp_path: Path) -> None:
    """include=/proc/kmsg read and consumed kernel log lines."""
    (tmp_path / "kmsg.conf").symlink_to("/proc/kmsg")
    config = tmp_path / "php-fpm.conf"
    config.write_text(
        f"[global]\ninclude=/proc/kmsg\ninclude={tmp_path}/kmsg.conf\ninclude=/dev/zero\n"
        "include=/sys/kernel/mm/transparent_hugepage/enabled\n[good]\nlisten = 9704\n"
    )
    done = discover("--config", str(config))
    assert done.returncode == 0, done
    refusals = [
        line for line in done.stdout.splitlines() if "/proc, /sys and /dev hold no configuration" in line
    ]
    assert len(refusals) == 4, done.stdout


def test_a_users_file_in_roots_include_glob_is_not_read(local_user: LocalUser, tmp_path: Path) -> None:
    """Root's glob reaching into a directory another user can write (or a
    file of theirs in a sticky one): their pools are not read."""
    local_user.write("conf.d/theirs.conf", f"[{INJECTED}]\nlisten = 9705\n")
    link = Path("/tmp") / f"cfcgi-link-{os.getpid()}"
    done = local_user.run(["ln", "-s", "/etc", str(link)])  # a user's link in sticky /tmp
    assert done.returncode == 0, done.stderr
    try:
        config = tmp_path / "php-fpm.conf"
        config.write_text(
            f"[global]\ninclude={local_user.home}/conf.d/*.conf\ninclude={link}/passwd\n[good]\nlisten = 9706\n"
        )
        done = discover("--config", str(config))
    finally:
        link.unlink()
    assert INJECTED not in done.stdout.split("problem:")[0]  # not in the table of pools
    assert f"{local_user.home}/conf.d/theirs.conf: not read: it belongs to {local_user.name}" in done.stdout
    assert f"{link}/passwd: not read: the link {link} belongs to {local_user.name}" in done.stdout


def test_a_file_writable_by_others_is_not_read(tmp_path: Path) -> None:
    config = tmp_path / "php-fpm.conf"
    config.write_text("[global]\n[open]\nlisten = 9707\n")
    config.chmod(0o666)
    done = discover("--config", str(config))
    assert done.returncode == 3, done
    assert "not read: it is writable by others (-rw-rw-rw-)" in done.stdout


# --- escaping for each engine -----------------------------------------------------------------------


def hostile_values(tmp_path: Path) -> Path:
    """Pools whose values an engine would take as its own syntax."""
    config = tmp_path / "php-fpm.conf"
    config.write_text(
        "[global]\n"
        "[8.2-www]\nlisten = 9711\nping.path = /ping\n"
        "[8.2 www]\nlisten = 9712\nping.path = /ping\n"
        "[x!y]\nlisten = 9713\nping.path = /ping\n"
        "[macro]\nlisten = /tmp/a$host.vars.secret$b.sock\nping.path = /ping\n"
        "ping.response = $service.vars.secret${NOT_EXPANDED\n"
        "[zabbix]\nlisten = /tmp/{$SECRET}.sock\n"
        "[big]\nlisten = 99999\n"
    )
    return config


def test_icinga2_escapes_macros_and_takes_any_pool_name(tmp_path: Path) -> None:
    """A '!' in a pool name failed icinga2 daemon -C; $host.vars.secret$ in
    a value would be resolved when the command runs."""
    services = tmp_path / "discovered.conf"
    done = discover("--config", str(hostile_values(tmp_path)), "--format", "icinga2")
    services.write_text(done.stdout)
    assert 'vars.fastcgi_socket = "/tmp/a$$host.vars.secret$$b.sock"' in done.stdout
    assert "host_name = NodeName" in done.stdout
    conf = tmp_path / "main.conf"
    conf.write_text(
        f'const PluginDir = "/usr/lib/nagios/plugins"\nconst PluginContribDir = "/usr/lib/nagios/plugins"\n'
        'const ManubulonPluginDir = "/usr/lib/nagios/plugins"\nconst NodeName = "web1"\n'
        'const ZoneName = "web1"\nconst TicketSalt = ""\ninclude <itl>\ninclude <plugins>\n'
        f'include "{ROOT / "contrib" / "icinga2" / "fastcgi.conf"}"\ninclude "{services}"\n'
        'object Host NodeName { check_command = "dummy"\n address = "127.0.0.1" }\n'
    )
    assert "Instantiated 5 Services." in validate(conf, tmp_path)


def test_nagios_takes_every_pool_name_once(tmp_path: Path) -> None:
    services = tmp_path / "services.cfg"
    services.write_text(
        discover(
            "--config", str(hostile_values(tmp_path)), "--format", "nagios", "--host-name", "web1"
        ).stdout
    )
    done = subprocess.run(
        ["nagios4", "-v", str(nagios_cfg(tmp_path, services))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Checked 5 services." in done.stdout
    assert "$$host.vars.secret$$" in services.read_text()


def test_monit_names_stay_unique_after_cleaning(tmp_path: Path) -> None:
    """ "8.2-www" and "8.2 www" both became php-fpm-8.2-www-ping: monit
    refused the whole file."""
    done = discover("--config", str(hostile_values(tmp_path)), "--format", "monit", "--plugin", CHECK)
    names = monit_names(done.stdout)
    assert len(names) == len(set(names)) == 5
    assert {"php-fpm-8.2-www-ping", "php-fpm-8.2-www-ping-2"} <= set(names)
    checked = monit_check(done.stdout, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_zabbix_gets_no_user_macro_and_no_unsafe_key(tmp_path: Path) -> None:
    """{$MACRO} in an LLD value would be resolved in the item key."""
    document = json.loads(discover("--config", str(hostile_values(tmp_path)), "--format", "json").stdout)
    text = json.dumps(document["data"])
    assert "{$" not in text and "secret" not in text
    assert "zabbix: left out, a value holds a character Zabbix agents refuse in keys" in document["problems"]
    assert {entry["{#POOL}"] for entry in document["data"]} == {"8.2-www", "8.2 www"}
    assert "x!y: left out, a value holds a character Zabbix agents refuse in keys" in document["problems"]


def test_a_port_past_65535_is_a_problem_not_a_target(tmp_path: Path) -> None:
    done = discover("--config", str(hostile_values(tmp_path)))
    assert f"{tmp_path / 'php-fpm.conf'}:17: pool [big]: listen is no address" in done.stdout


# --- one budget over everything ---------------------------------------------------------------------


def test_a_glob_through_symlink_loops_ends_within_the_budget(tmp_path: Path) -> None:
    """Symlinks to . across 7 levels took 20 s and 1.15 GB."""
    loops = tmp_path / "loops"
    loops.mkdir()
    for number in range(8):
        (loops / f"l{number}").symlink_to(".")
    config = tmp_path / "php-fpm.conf"
    config.write_text(f"[global]\ninclude={loops}/*/*/*/*/*/*/*/*.conf\n[good]\nlisten = 9721\n")
    outcome = run_check("discover", "--config", str(config), limit=60)
    assert outcome.code == 0, outcome
    assert (
        "include globs matched more than 5000 names" in outcome.stdout or "longer than 5 s" in outcome.stdout
    )
    assert outcome.elapsed < 20, outcome.elapsed
    assert outcome.peak_rss_kib < 200 * 1024, outcome.peak_rss_kib


def test_many_masters_and_large_files_share_one_budget(tmp_path: Path) -> None:
    """Ten 1 MB files of pools took 470 MB; three masters including the
    same files 2.1 GB, each master with a budget of its own."""
    pools = tmp_path / "pools"
    pools.mkdir()
    for number in range(10):
        lines = [f"[p{number}_{index}]\nlisten = {1000 + index}\n" for index in range(40000)]
        (pools / f"{number}.conf").write_text("".join(lines)[: 1000 * 1024])
    configs = []
    for master in range(3):
        config = tmp_path / f"master{master}.conf"
        config.write_text(f"[global]\ninclude={pools}/*.conf\n")
        configs += ["--config", str(config)]
    outcome = run_check("discover", *configs, "--format", "json", limit=60)
    assert outcome.code == 0, outcome.stdout[:300]
    document = json.loads(outcome.stdout)
    assert len(document["data"]) <= 2000
    assert any("more than 2000 pools" in problem for problem in document["problems"])
    assert outcome.peak_rss_kib < 250 * 1024, outcome.peak_rss_kib


def test_serve_stops_while_it_discovers(tmp_path: Path) -> None:
    """SIGTERM was ignored while serve --discover started. Here discovery
    takes its whole time budget: thousands of includes, each a glob that
    scans a directory of 50,000 names and matches none of them."""
    base = tmp_path / "etc" / "php" / "8.2" / "fpm"
    crowd = base / "crowd"
    crowd.mkdir(parents=True)
    for number in range(50000):
        os.close(os.open(crowd / f"f{number}", os.O_CREAT | os.O_WRONLY, 0o644))
    (base / "php-fpm.conf").write_text("[global]\n" + f"include={crowd}/none*.conf\n" * 4000)
    process = subprocess.Popen(
        [CHECK, "serve", "--listen", "127.0.0.1:0", "--discover", "--discover-root", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stat = Path(f"/proc/{process.pid}/stat")

        def cpu_seconds() -> float:
            # utime and stime, the 14th and 15th fields, after the (name).
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        # Start-up costs about 0.3 s of CPU time on any machine, loaded or
        # not: a second means discovery is under way, past the point where
        # a signal was looked at once and then ignored.
        wait_until(lambda: cpu_seconds() >= 1.0, 30, "serve discovering")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=4) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_serve_logs_file_names_as_one_printable_line(tmp_path: Path) -> None:
    """A file name with a newline and <0> forged an emergency line in the journal."""
    from tests.sidecar import Sidecar  # noqa: PLC0415

    base = tmp_path / "etc" / "php" / "8.2" / "fpm"
    forged = base / "pool.d\n<0>forged emergency"
    forged.mkdir(parents=True)
    (forged / "bad.conf").write_text("not a setting\n")
    (base / "php-fpm.conf").write_text(
        f"[global]\ninclude={base}/pool.d*/*.conf\n[good]\nlisten = 127.0.0.1:9731\n[big]\nlisten = 99999\n"
    )
    sidecar = Sidecar("--discover", "--discover-root", str(tmp_path))
    with sidecar:
        assert sidecar.get("/8.2-good/handshake")[0] == 503  # a target, though nothing listens
    lines = sidecar.log_lines()
    assert all(re.match(r"<[4-6]>", line) for line in lines), lines
    assert any("pool.d\\x0a<0>forged emergency/bad.conf:1: not a setting" in line for line in lines), lines
    assert any("pool [big]: listen is no address" in line for line in lines), lines


@pytest.mark.parametrize("escape", ["\x1b[2J", "\x1b]0;title\x07"])
def test_escapes_in_a_roots_master_title_never_reach_a_terminal(tmp_path: Path, escape: str) -> None:
    """Terminal escapes in a master's title reached the table raw."""
    title = f"php-fpm: master process ({tmp_path}/{escape}.conf)"
    process = subprocess.Popen(["perl", "-e", "$0 = shift; sleep 300", title])
    try:
        wait_until(
            lambda: Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(title.encode()), 15, "title"
        )
        done = discover("--config", str(good_config(tmp_path / "etc")), "--from-running")
    finally:
        process.kill()
        process.wait()
    assert "\x1b" not in done.stdout + done.stderr
    assert f"skipped the master with pid {process.pid}: its configuration path" in done.stderr


def test_icinga2_runs_a_dollar_as_a_dollar(tmp_path: Path) -> None:
    """In a real daemon: a value of a pool's that reads like a macro
    ($host.vars.secret$) reaches the plugin as it is, never resolved. (The
    check interval is shortened so the first check comes at once; nothing
    else of discover's output is changed.)"""
    config = tmp_path / "php-fpm.conf"
    config.write_text(f"[global]\n[macro]\nlisten = {tmp_path}/a$host.vars.secret$b.sock\n")
    services = tmp_path / "discovered.conf"
    text = discover("--config", str(config), "--format", "icinga2").stdout
    services.write_text(
        text.replace('\tcheck_command = "fastcgi"', '\tcheck_command = "fastcgi"\n\tcheck_interval = 1s')
    )
    conf = tmp_path / "main.conf"
    conf.write_text(
        f'const PluginDir = "/usr/lib/nagios/plugins"\nconst PluginContribDir = "{Path(CHECK).parent}"\n'
        'const ManubulonPluginDir = "/usr/lib/nagios/plugins"\nconst NodeName = "web1"\n'
        'const ZoneName = "web1"\nconst TicketSalt = ""\ninclude <itl>\ninclude <plugins>\n'
        f'include "{ROOT / "contrib" / "icinga2" / "fastcgi.conf"}"\ninclude "{services}"\n'
        'object CheckerComponent "checker" { }\n'
        'object PerfdataWriter "perfdata" {\n'
        f'  service_perfdata_path = "{tmp_path / "perfdata" / "service-perfdata"}"\n'
        f'  service_temp_path = "{tmp_path / "perfdata" / "service-perfdata.tmp"}"\n'
        f'  host_perfdata_path = "{tmp_path / "perfdata" / "host-perfdata"}"\n'
        f'  host_temp_path = "{tmp_path / "perfdata" / "host-perfdata.tmp"}"\n'
        "  rotation_interval = 1s\n"
        '  service_format_template = "SERVICEDESC::$service.name$\\tSERVICEOUTPUT::$service.output$"\n'
        "}\n"
        'object Host NodeName { check_command = "dummy"\n address = "127.0.0.1"\n vars.secret = "hunter2" }\n'
    )
    daemon = subprocess.Popen(
        [icinga2(), "daemon", "-c", str(conf), *defines(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outputs: List[str] = []

    def checked() -> bool:
        outputs.extend(line["SERVICEOUTPUT"] for line in perfdata_lines(tmp_path) if "SERVICEOUTPUT" in line)
        return bool(outputs)

    try:
        wait_until(checked, 60, "icinga2 running the discovered check", interval=0.25)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert "hunter2" not in " ".join(outputs)
    assert f"{tmp_path}/a$host.vars.secret$b.sock" in outputs[0], outputs
