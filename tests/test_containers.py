"""The container recipes in README.md, run exactly as written (the port
pointed at a test pool): Docker's HEALTHCHECK and Kubernetes' probes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.conftest import BIN
from tests.fpm import FpmPool, SlowRequest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def healthcheck_command() -> str:
    block = re.search(r"```dockerfile\n(HEALTHCHECK.*?)```", README, re.S)
    assert block, "README has no HEALTHCHECK block"
    joined = block.group(1).replace("\\\n", " ")
    return joined.split(" CMD ", 1)[1].strip()


def probe_command(probe: str) -> List[str]:
    block = re.search(rf"{probe}:\n  exec:\n    command: (\[.*?\])\n", README)
    assert block, f"README has no {probe}"
    return json.loads(block.group(1))


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FpmPool]:
    pool = FpmPool(tmp_path_factory.mktemp("containers"), max_children=2).start()
    yield pool
    pool.stop()


def env() -> dict:
    return {"PATH": f"{BIN}:{os.environ['PATH']}"}


def run_shell(command: str, pool: FpmPool) -> int:
    """As Docker runs CMD in shell form: /bin/sh -c."""
    return subprocess.run(
        ["/bin/sh", "-c", command.replace("9000", str(pool.port))], env=env(), capture_output=True
    ).returncode


def run_exec(command: List[str], pool: FpmPool) -> subprocess.CompletedProcess:
    """As the kubelet runs an exec probe: the argv, no shell."""
    argv = [arg.replace("9000", str(pool.port)) for arg in command]
    return subprocess.run(argv, env=env(), capture_output=True, text=True)


def test_probes_while_healthy_and_under_load(pool: FpmPool) -> None:
    assert run_shell(healthcheck_command(), pool) == 0
    liveness, readiness = probe_command("livenessProbe"), probe_command("readinessProbe")
    assert run_exec(liveness, pool).returncode == 0
    assert run_exec(readiness, pool).returncode == 0
    # One worker held by a slow request, the other serving the probe: no
    # idle worker left, so the pod is not ready, yet alive.
    with SlowRequest(pool, ms=3000):
        busy = run_exec(readiness, pool)
        assert busy.returncode == 2, busy.stdout
        assert "idle_processes is 0 (outside range 1:)" in busy.stdout
        assert run_exec(liveness, pool).returncode == 0


def test_probes_when_fpm_is_down(pool: FpmPool) -> None:
    pool.stop()
    assert run_shell(healthcheck_command(), pool) == 1  # Docker's "unhealthy"
    assert run_exec(probe_command("livenessProbe"), pool).returncode == 2
