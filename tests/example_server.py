"""Runs example_app on an ephemeral loopback port for the example's tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from example_app import create_app


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def _unset(environ: Any, start_response: Any) -> Any:
    raise RuntimeError("the app is not set yet")


class LiveExample:
    """A started example: ``base``, ``app``, and root credentials."""

    def __init__(self, instance: Path, **config: Any) -> None:
        # Bind first: the issuer URL is derived from the port we serve on.
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, _unset, threaded=True, request_handler=_Quiet)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.issuer = self.base + "/archivist/iam/v1/appidp"
        settings = {
            "EXAMPLE_INSTANCE_PATH": str(instance),
            "EXAMPLE_BASE_URL": self.base,
            # Explicit, so that CCGUARD_* variables in the environment
            # (tox passes them on) cannot point the API elsewhere.
            "CCGUARD_ISSUER": self.issuer,
            "CCGUARD_AUDIENCE": self.base + "/archivist",
            **config,
        }
        self.app: Flask = create_app(settings)
        self.server.app = self.app
        self.token_url = self.issuer + "/token"
        self.assets_url = self.base + "/archivist/v2/assets"
        self.apps_url = self.base + "/archivist/iam/v1/applications"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.root = self.register("test-root", "--root")

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join()
        self.server.server_close()

    def register(self, name: str, *args: str) -> dict[str, Any]:
        """A registration made with ``flask register``, as the CLI prints it."""
        result = self.app.test_cli_runner().invoke(args=["register", name, *args])
        assert result.exit_code == 0, result.output
        record: dict[str, Any] = json.loads(result.output)
        return record

    def token(self, record: dict[str, Any]) -> str:
        response = requests.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": record["client_id"],
                "client_secret": record["credentials"][0]["secret"],
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@contextmanager
def live_example(instance: Path, **config: Any) -> Iterator[LiveExample]:
    live = LiveExample(instance, **config)
    try:
        yield live
    finally:
        live.stop()
