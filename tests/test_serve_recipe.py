"""The sidecar's Kubernetes recipe in README.md, run as written (the ports
pointed at a test pool and a free port): readiness follows FPM, liveness
follows the sidecar."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.fpm import FpmPool, free_port
from tests.sidecar import Sidecar

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def pod_spec() -> str:
    block = re.search(r"```yaml\n(containers:\n.*?)```", README, re.S)
    assert block, "README has no sidecar pod spec"
    return block.group(1)


def test_the_pod_spec_probes_answer_as_documented(tmp_path: Path) -> None:
    spec = pod_spec()
    command = json.loads(re.search(r"command: (\[.*\])", spec).group(1))  # type: ignore[union-attr]
    readiness = re.search(r"readinessProbe:\n\s+httpGet: \{path: (\S+), port: 9253\}", spec).group(1)  # type: ignore[union-attr]
    liveness = re.search(r"livenessProbe:\n\s+httpGet: \{path: (\S+), port: 9253\}", spec).group(1)  # type: ignore[union-attr]
    assert (readiness, liveness) == ("/ping", "/healthz")
    assert command[:2] == ["check_fastcgi", "serve"]
    with FpmPool(tmp_path / "fpm", max_children=2) as pool:
        port = free_port()
        args = [
            arg.replace("0.0.0.0:9253", f"127.0.0.1:{port}").replace("9000", str(pool.port))
            for arg in command
        ]
        sidecar = Sidecar(port=port)
        sidecar.command = [sidecar.command[0], *args[1:]]
        with sidecar:
            assert sidecar.get(readiness, {"User-Agent": "kube-probe/1.31"})[0] == 200
            assert sidecar.get(liveness, {"User-Agent": "kube-probe/1.31"})[0] == 200
            pool.stop()
            assert sidecar.get(readiness)[0] == 503  # out of rotation
            assert sidecar.get(liveness)[0] == 200  # but not restarted: the sidecar is fine


def test_the_sidecar_image_runs_its_entrypoint(tmp_path: Path) -> None:
    block = re.search(r"```dockerfile\n(FROM python.*?)```", README, re.S)
    assert block, "README has no sidecar Dockerfile"
    dockerfile = block.group(1)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert "USER nobody" in dockerfile and "EXPOSE 9253" in dockerfile
    with FpmPool(tmp_path / "fpm", max_children=2) as pool:
        port = free_port()
        args = [
            a.replace("0.0.0.0:9253", f"127.0.0.1:{port}").replace("9000", str(pool.port))
            for a in entrypoint + cmd
        ]
        sidecar = Sidecar(port=port)
        sidecar.command = [sidecar.command[0], *args[1:]]
        with sidecar:
            assert sidecar.get("/ping")[0] == 200
            assert sidecar.get("/healthz")[0] == 200
