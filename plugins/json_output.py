"""--format json: one JSON document per run, for a Zabbix master item with
dependent JSONPath items (e.g. ``$.metrics.active_processes.value``).

Zabbix ignores exit codes for these items, so the document carries the
state and the process exits 0."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import nagiosplugin

from .failures import Failure
from .report import EXIT_CODES


def _range(value: Any) -> Optional[str]:
    text = str(value) if value is not None else ""
    return text or None


def document(check: nagiosplugin.Check, mode: str, target: str) -> Dict[str, Any]:
    metrics: Dict[str, Any] = {}
    for result in check.results:
        metric = result.metric
        if metric is None or isinstance(metric.value, Failure) or not isinstance(metric.value, (int, float)):
            continue
        context = metric.contextobj
        metrics[metric.name] = {
            "value": metric.value,
            "uom": metric.uom or "",
            "state": str(result.state).upper(),
            "warning": _range(getattr(context, "warning", None)),
            "critical": _range(getattr(context, "critical", None)),
            "min": metric.min,
            "max": metric.max,
        }
    state = str(check.state).upper()
    return {
        "state": state,
        "exit_code": EXIT_CODES[state],
        "summary": check.summary_str,
        "mode": mode,
        "target": target,
        "metrics": metrics,
        "details": list(check.verbose_str or []),
        "perfdata": " ".join(check.perfdata),
    }


def emit(check: nagiosplugin.Check, mode: str, target: str) -> None:
    check()
    print(json.dumps(document(check, mode, target)))
