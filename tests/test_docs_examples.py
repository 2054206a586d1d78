"""The python examples in docs/fcgi_wire.md run, as written, against a real
php-fpm pool (they read its address from the environment)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from tests.fpm import FpmPool

DOC = Path(__file__).resolve().parent.parent / "docs" / "fcgi_wire.md"


def examples() -> List[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.M | re.S)


def test_the_doc_has_an_example_of_each_way_to_call() -> None:
    found = examples()
    assert len(found) >= 4
    assert any("fcgi_wire.request(" in code and "aio" not in code for code in found)
    assert any("await fcgi_wire.aio.request(" in code for code in found)
    assert any("conn.receive_data(" in code and "next_event()" in code for code in found)
    assert any("open_connection(" in code for code in found)


@pytest.mark.parametrize("number", range(len(examples())))
def test_example_runs(number: int, fpm: FpmPool, tmp_path: Path) -> None:
    code = examples()[number]
    program = tmp_path / "example.py"
    program.write_text(code)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FCGI_WIRE_EXAMPLE_TCP": f"127.0.0.1:{fpm.port}",
        "FCGI_WIRE_EXAMPLE_UNIX": str(fpm.socket_path),
        "PYTHONWARNINGS": "error",
        "PYTHONDEVMODE": "1",
    }
    done = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    if "pong" in code:
        assert "pong" in done.stdout
    if "ConnectionRefused" in code:
        assert "connect to 127.0.0.1:1: connection refused" in done.stdout
