"""A real browser for the web view: Debian's headless chromium driven by Selenium, used by
`netctl demo` (a screenshot) and the lab tests (tests/lab/test_web.py).

Only local binaries: /usr/bin/chromium and /usr/bin/chromedriver (`make setup` installs
them) — Selenium is given the driver's path, so it never tries to download one. Each browser
gets a fresh profile in a temporary directory, removed with it; as root chromium needs
--no-sandbox.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why no browser can be driven here (None: it can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (Debian package {package}; make setup installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is missing (pip install -e '.[test]')"
    return None


@contextmanager
def browser(width: int = 1600, height: int = 1000, insecure: bool = False) -> Iterator[Any]:
    """A headless chromium (a Selenium WebDriver), quit and its profile removed afterwards.
    `insecure`: accept any TLS certificate (a test's own self-signed one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="netctl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--ignore-certificate-errors" if insecure else "",
                "--no-sandbox" if os.geteuid() == 0 else ""):
        if arg:
            options.add_argument(arg)
    driver = None
    try:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_drawn(driver: Any, timeout: float = 30.0, messages: int = 2) -> bool:
    """Until the page drew the pool (`messages` updates taken, hosts on the canvas)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = driver.execute_script(
            "return window.netctlView && window.netctlView.messages >= arguments[0] && "
            "window.cy.nodes('.host').length > 0", messages)
        if done:
            return True
        time.sleep(0.2)
    return False


def screenshot(url: str, path: Path, timeout: float = 30.0) -> Path:
    """Open the web view at `url`, wait until it drew the pool and save a PNG at `path`."""
    with browser() as driver:
        driver.get(url)
        if not wait_drawn(driver, timeout):
            raise TimeoutError(f"{url}: the web view drew nothing in {timeout:.0f} s")
        time.sleep(1.0)  # the first layout settles
        path.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(path)):
            raise OSError(f"chromium could not save {path}")
    return path
