"""The real FiftyOne App in a real browser: run an operator, see the run in the panel.

Starts the App server on 127.0.0.1 (on the test session's private database), drives Debian's
Chromium with Playwright, and checks the database. Screenshots go to the test's temporary
directory (and to $CONDENSE_SCREENSHOTS_DIR when set, which is how the README's are made).
"""

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

import fiftyone as fo
import fiftyone_condense as fc

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_open(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def app(fashion_mnist, tmp_path):
    """The App serving a persistent copy of the small dataset; closed and removed afterwards."""
    assert os.path.isfile(CHROMIUM), "Debian's chromium is missing: run the install step (tools/install.sh)"
    dataset = fashion_mnist.clone("browser-test")
    dataset.persistent = True
    port = free_port()
    session = fo.launch_app(dataset, remote=True, address="127.0.0.1", port=port, auto=False)
    try:
        wait_until(lambda: port_is_open(port), 120, "the App server")
        yield dataset, f"http://127.0.0.1:{port}/datasets/{dataset.name}"
    finally:
        session.close()
        wait_until(lambda: not port_is_open(port), 60, "the App server to stop")
        dataset.delete()


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("CONDENSE_SCREENSHOTS_DIR"):
        shutil.copy(path, Path(os.environ["CONDENSE_SCREENSHOTS_DIR"]) / path.name)


def test_select_coreset_from_the_operator_browser_and_see_it_in_the_panel(app, tmp_path):
    from playwright.sync_api import sync_playwright

    dataset, url = app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, timeout=120_000)
            page.get_by_text("Samples").first.wait_for(timeout=120_000)
            for banner_button in ("Dismiss", "Disable"):
                if page.get_by_text(banner_button, exact=True).count():
                    page.get_by_text(banner_button, exact=True).first.click()

            page.keyboard.press("Backquote")  # the operator browser
            page.get_by_placeholder("Search operations by name...").fill("select coreset")
            page.get_by_text("Condense: select coreset").first.click()
            page.get_by_text("Images per class (IPC)").wait_for(timeout=60_000)
            screenshot(page, tmp_path, "operator-form")
            page.get_by_role("button", name="Execute").click()

            def tagged() -> int:
                dataset.reload()
                return dataset.count_sample_tags().get("condense:random_ipc10", 0)

            wait_until(lambda: tagged() == 100, 120, "the selected samples to be tagged")
            assert fc.list_runs(dataset) == ["random_ipc10"]
            assert len(dataset.load_saved_view("condense-random_ipc10")) == 100
            page.get_by_text("done", exact=True).wait_for(timeout=30_000)  # the live progress bar ends at 100 %
            page.get_by_role("button", name="Done").click()

            page.locator("[data-cy='new-panel-btn']").first.click()
            page.get_by_text("Condensation", exact=True).first.click()
            page.get_by_text("Condensation runs (1)", exact=False).wait_for(timeout=60_000)
            page.get_by_role("cell", name="random_ipc10").wait_for(timeout=30_000)
            page.wait_for_timeout(3000)  # let the grid finish loading its thumbnails
            screenshot(page, tmp_path, "condense-panel")
        finally:
            browser.close()
    assert (tmp_path / "operator-form.png").stat().st_size > 10_000
    assert (tmp_path / "condense-panel.png").stat().st_size > 10_000
