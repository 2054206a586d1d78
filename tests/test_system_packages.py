"""tools/system-packages (field report, item 16): the demo installs what it
shows, make test says what and why, and an install leaves no service of its
own enabled. The link bookkeeping runs on real files under a temporary root."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "system-packages"


def script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("system_packages", str(SCRIPT))
    spec = importlib.util.spec_from_loader("system_packages", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def listing(target: str) -> list:
    done = subprocess.run([str(SCRIPT), "--list", target], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_the_demo_installs_php_fpm_and_nothing_else() -> None:
    lines = listing("demo")
    assert lines[0] == "make demo needs these Debian packages:"
    assert [line.split()[0] for line in lines[1:]] == ["php-fpm"]


def test_make_test_names_every_package_with_its_reason() -> None:
    lines = listing("test")[1:]
    packages = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert {"php-fpm", "monit", "icinga2-bin", "nagios4-core", "zabbix-agent"} <= packages.keys()
    assert all(len(why) > 15 for why in packages.values()), packages
    assert "MTA" in packages["nagios4-core"]


def test_the_makefile_uses_the_tables() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\ttools/system-packages demo\n" in makefile
    assert "\ttools/system-packages test\n" in makefile
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "system-packages" not in demo.split("\n", 1)[0]  # no dependency on the test set


def test_only_the_service_links_an_install_created_are_removed(tmp_path: Path) -> None:
    tool = script()
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    rc2 = tmp_path / "etc/rc2.d"
    wants.mkdir(parents=True)
    rc2.mkdir(parents=True)
    (wants / "postgresql.service").symlink_to("/lib/systemd/system/postgresql.service")
    (rc2 / "S01postgresql").symlink_to("../init.d/postgresql")
    before = tool.service_links(tmp_path)
    # What installing monit and php-fpm does on Debian:
    (wants / "php8.2-fpm.service").symlink_to("/lib/systemd/system/php8.2-fpm.service")
    (rc2 / "S01monit").symlink_to("../init.d/monit")
    removed = tool.forget_new_services(tmp_path, before)
    assert sorted(Path(link).name for link in removed) == ["S01monit", "php8.2-fpm.service"]
    assert sorted(p.name for p in wants.iterdir()) == ["postgresql.service"]
    assert sorted(p.name for p in rc2.iterdir()) == ["S01postgresql"]
