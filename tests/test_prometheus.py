"""/metrics as Prometheus sees it: promtool checks the exposition, and a
real Prometheus (Debian's) scrapes the sidecar; the figures are read back
through its HTTP API. The alerting rules of contrib/prometheus pass
promtool's checks and their own unit tests, and name only metrics that the
sidecar exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests import prometheus
from tests.fpm import FpmPool
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    with FpmPool(tmp_path_factory.mktemp("prom"), max_children=3, pool_name="prom") as started:
        yield started


@pytest.fixture
def sidecar(pool: FpmPool) -> Iterator[Sidecar]:
    targets = ["--target", f"tcp=127.0.0.1:{pool.port}", "--target", f"unix={pool.socket_path}", "--full"]
    with Sidecar(*targets) as running:
        yield running


def test_promtool_accepts_the_exposition(sidecar: Sidecar) -> None:
    status, body, headers = sidecar.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = body.splitlines()
    for name in (
        "phpfpm_up",
        "phpfpm_active_processes",
        "phpfpm_accepted_connections_total",
        "phpfpm_start_since",
    ):
        assert any(line.startswith(f'{name}{{pool="prom",target="tcp"}}') for line in lines), name
    # hipages' bare counter names, for existing dashboards:
    assert any(line.startswith('phpfpm_accepted_connections{pool="prom",target="tcp"}') for line in lines)
    assert any(line.startswith("phpfpm_process_requests_total{") for line in lines)
    assert any(
        line.startswith('phpfpm_process_state{pool="prom",slot="') and 'state="Idle"' in line
        for line in lines
    )
    assert "pid=" not in body  # a label per pid grows with every recycled worker
    # start_since is seconds (small), accepted connections a count: not swapped as in hipages
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")
    }
    assert values['phpfpm_start_since{pool="prom",target="tcp"}'] < 3600


def test_a_real_prometheus_scrapes_the_sidecar(sidecar: Sidecar, pool: FpmPool, tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: fpm\n    static_configs:\n      - targets: ['127.0.0.1:{sidecar.port}']\n"
    )
    with prometheus.running(config, tmp_path) as server:
        server.wait_for(lambda: len(server.query("phpfpm_up == 1")) == 2, "Prometheus scraping the sidecar")
        total = server.query('phpfpm_total_processes{target="tcp"}')
        assert total[0]["metric"]["pool"] == "prom" and total[0]["value"][1] == "3"
        assert server.query('up{job="fpm"}')[0]["value"][1] == "1"


RULES = Path(__file__).resolve().parent.parent / "contrib" / "prometheus"


def test_the_alerting_rules_pass_promtool() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES / "phpfpm-alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, checked
    tested = subprocess.run(
        ["promtool", "test", "rules", "phpfpm-alerts.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    alerts = re.findall(r"^\s+- alert: (\w+)$", (RULES / "phpfpm-alerts.yml").read_text(), re.MULTILINE)
    tests = set(re.findall(r"alertname: (\w+)", (RULES / "phpfpm-alerts.test.yml").read_text()))
    assert len(alerts) == 5 and set(alerts) == tests, (alerts, tests)  # each alert has its unit tests


def test_the_alerting_rules_name_exported_metrics(sidecar: Sidecar) -> None:
    names = set(re.findall(r"\bphpfpm_\w+", (RULES / "phpfpm-alerts.yml").read_text()))
    status, body, _ = sidecar.get("/metrics")  # --full: the per-process families too
    exported = {line.split("{")[0] for line in body.splitlines() if line.startswith("phpfpm_")}
    assert status == 200 and len(names) == 5 and names <= exported, names - exported
