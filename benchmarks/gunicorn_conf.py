"""gunicorn settings and hooks for the load harness (``gunicorn -c benchmarks/gunicorn_conf.py``).

Each worker warms its key cache with one real request before it accepts
connections (``post_worker_init``), drops a ready file, and writes its
``stats()`` as JSON when it exits, into ``$LOADTEST_DIR``.
The warm-up is also what we recommend in production (see ``docs/deployment.rst``).
"""

from __future__ import annotations

import json
import os
from typing import Any

worker_class = "gthread"
graceful_timeout = 10
timeout = 60
keepalive = 5
loglevel = "warning"


def _dir() -> str | None:
    return os.environ.get("LOADTEST_DIR")


def stats_of(app: Any) -> dict[str, Any]:
    """The guard's counters of a Flask app (extension or bare validator)."""
    state = app.extensions.get("ccguard")
    guard = getattr(state, "guard", None)
    if guard is not None and hasattr(guard, "stats"):
        with app.app_context():
            result: dict[str, Any] = guard.stats()
            return result
    validator = getattr(state, "validator", None) or app.extensions["ccguard_validator"]
    return dict(validator.stats())


def post_worker_init(worker: Any) -> None:
    token = os.environ.get("LOADTEST_WARM_TOKEN")
    path = os.environ.get("LOADTEST_PATH", "/")
    status = 0
    if token:
        with worker.wsgi.test_client() as client:
            status = client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code
    directory = _dir()
    if directory:
        tmp = os.path.join(directory, f".ready-{os.getpid()}")
        with open(tmp, "w") as fh:
            fh.write(str(status))
        os.replace(tmp, os.path.join(directory, f"ready-{os.getpid()}"))  # seen whole or not at all


def worker_exit(server: Any, worker: Any) -> None:
    directory = _dir()
    wsgi = getattr(worker, "wsgi", None)
    if not directory or wsgi is None:
        return
    tmp = os.path.join(directory, f".stats-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(stats_of(wsgi), fh)
    os.replace(tmp, os.path.join(directory, f"stats-{os.getpid()}.json"))
