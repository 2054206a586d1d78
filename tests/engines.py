"""Shared by the engine tests: the example files are written for a real
host (Debian's plugin directory, PHP-FPM's socket, port 9000); the tests
point them at the test pool by replacing exactly those strings."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from tests.conftest import CHECK
from tests.fpm import FpmPool

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_PLUGIN = "/usr/lib/nagios/plugins/check_fastcgi"
FPM_SOCKET = "/run/php/php8.2-fpm.sock"
FPM_PORT = "9000"


def for_test_pool(text: str, pool: FpmPool, extra: Optional[Dict[str, str]] = None) -> str:
    replacements = {
        INSTALLED_PLUGIN: CHECK,
        FPM_SOCKET: str(pool.socket_path),
        FPM_PORT: str(pool.port),
        **(extra or {}),
    }
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text
