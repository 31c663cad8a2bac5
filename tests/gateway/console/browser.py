"""A real headless chromium (Debian's ``chromium`` + ``chromium-driver``, through Selenium)
and a real uvicorn serving the gateway, for the console's browser tests.

The browser tests skip, with the reason, only where chromium is not installed and the run is
not CI; under CI (``CI`` set) a missing browser fails them: ``./scripts/test`` installs it
(``ensure_chromium`` in ``scripts/lib.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WINDOW = (1280, 900)
WAIT_SECONDS = 20.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") not in (None, "", "0", "false"):
        pytest.fail(f"{reason} (CI: ./scripts/test installs it, ensure_chromium)")
    pytest.skip(f"{reason}: apt-get install -y chromium chromium-driver")


def require_chromium() -> tuple[str, str]:
    """The paths of chromium and chromedriver; skipped without them (failed under CI)."""
    binary = shutil.which("chromium")
    driver_binary = shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        _unavailable("Debian's chromium / chromedriver is not installed")
    assert binary is not None and driver_binary is not None
    return binary, driver_binary


@contextlib.contextmanager
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless chromium with a :data:`WINDOW` viewport, its console messages kept."""
    binary, driver_binary = require_chromium()
    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_binary))
    try:
        # the viewport itself, whatever the window decorations take (the screenshot's size)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


class TlsTerminator:
    """What the TLS terminator in front of the gateway does for an operator's browser that
    presents its client certificate (nginx ``ssl_verify_client on`` with
    ``proxy_set_header x-ssl-client-cert $ssl_client_escaped_cert``): every request reaches
    the gateway with that certificate's header, so mTLS-bound admin tokens verify."""

    def __init__(self, app: Any, certificate_pem: str) -> None:
        self.app = app
        self.header = (b"x-ssl-client-cert", quote(certificate_pem).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [h for h in scope["headers"] if h[0] != self.header[0]]
            scope = {**scope, "headers": [*headers, self.header]}
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` under a real uvicorn on a free port of 127.0.0.1, on this event loop: its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        for _ in range(1000):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


def run_for(seconds: float) -> Callable[[Callable[[], Awaitable[None]]], Callable[[], None]]:
    """A browser scenario, run on a fresh event loop when called, failed after ``seconds``."""

    def decorate(scenario: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        def run() -> None:
            async def bounded() -> None:
                await asyncio.wait_for(scenario(), seconds)

            asyncio.run(bounded())

        return run

    return decorate


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait (at most :data:`WAIT_SECONDS`) for ``condition`` to give something true."""
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, f"waiting for {what}")


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def sign_in(driver: WebDriver, url: str, token: str) -> None:
    """Open the console and sign in with ``token``; wait for the first live figures."""
    driver.get(f"{url}/console")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, lambda d: text_of(d, "status") == "signed in", "the summary to load")
    wait_for(driver, lambda d: text_of(d, "live-at").startswith("at "), "the live figures")


def script_errors(driver: WebDriver) -> list[str]:
    """The browser console's script errors and Content-Security-Policy violations (a 404
    that the page asked for and handled is not one)."""
    read_log = cast(Callable[[str], list[dict[str, Any]]], driver.get_log)
    return [
        str(entry["message"])
        for entry in read_log("browser")
        if any(s in str(entry["message"]) for s in ("Content Security Policy", "Uncaught"))
    ]
