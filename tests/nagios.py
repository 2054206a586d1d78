"""Debian's nagios4 for the tests: a nagios.cfg around contrib's
definitions, and the service states the daemon writes to status.dat."""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path
from typing import Dict, Sequence

from tests.conftest import BIN
from tests.engines import ROOT

CONTRIB = ROOT / "contrib" / "nagios"
DEBIAN_OBJECTS = Path("/etc/nagios4/objects")

HOST = """
define command {
    command_name    check-host-alive
    command_line    /bin/true
}
define host {
    use         linux-server
    host_name   web1
    address     127.0.0.1
}
"""


def nagios_cfg(workdir: Path, services: Path, address: str = "127.0.0.1", extra: Sequence[Path] = ()) -> Path:
    """A nagios.cfg of Debian's object templates, contrib's commands,
    ``services``, the ``extra`` files and the host web1 at ``address``."""
    (workdir / "checkresults").mkdir(exist_ok=True)
    (workdir / "host.cfg").write_text(HOST.replace("127.0.0.1", address))
    (workdir / "resource.cfg").write_text(f"$USER1$={BIN}\n")
    settings = {
        "log_file": workdir / "nagios.log",
        "resource_file": workdir / "resource.cfg",
        "check_result_path": workdir / "checkresults",
        "status_file": workdir / "status.dat",
        "lock_file": workdir / "nagios.lock",
        "temp_file": workdir / "nagios.tmp",
        "temp_path": workdir,
        "object_cache_file": workdir / "objects.cache",
        "precached_object_file": workdir / "objects.precache",
        "state_retention_file": workdir / "retention.dat",
        "command_file": workdir / "nagios.cmd",
        "nagios_user": pwd.getpwuid(os.getuid()).pw_name,
        "nagios_group": grp.getgrgid(os.getgid()).gr_name,
        "illegal_macro_output_chars": "`~$&|'\"<>",
        # Seconds, and no spreading of the first checks: results at once.
        "interval_length": 1,
        "service_inter_check_delay_method": "n",
        "host_inter_check_delay_method": "n",
        "status_update_interval": 1,
        "check_result_reaper_frequency": 1,
        "retain_state_information": 0,
    }
    files = [
        DEBIAN_OBJECTS / name for name in ("commands.cfg", "contacts.cfg", "timeperiods.cfg", "templates.cfg")
    ]
    files += [CONTRIB / "fastcgi-commands.cfg", *extra, services, workdir / "host.cfg"]
    lines = [f"cfg_file={path}" for path in files] + [f"{key}={value}" for key, value in settings.items()]
    cfg = workdir / "nagios.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def service_status(status_file: Path) -> Dict[str, Dict[str, str]]:
    services: Dict[str, Dict[str, str]] = {}
    text = status_file.read_text(errors="replace") if status_file.exists() else ""
    for block in re.findall(r"servicestatus \{(.*?)\}", text, re.S):
        fields = dict(line.strip().split("=", 1) for line in block.strip().splitlines() if "=" in line)
        services[fields.get("service_description", "")] = fields
    return services
