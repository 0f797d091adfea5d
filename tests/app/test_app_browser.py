"""The real FiftyOne App in a real browser: run an operator, see the run in the panel.

Starts the App server on 127.0.0.1 (on the test session's private database), drives Debian's
Chromium with Playwright, and checks the database. Beside the operator's random selection, a real
(short) DM distillation of the small Fashion-MNIST at IPC 1, 2 and 5 is made and evaluated with the
SDK, so the panel opens a run with distilled images, accuracy against IPC and per-class accuracy;
then the panel's **Write report** writes the HTML report (fc.report), the browser downloads it, and
the downloaded file is opened from disk. Screenshots go to the test's temporary directory (and to
$CONDENSE_SCREENSHOTS_DIR when set, which is how the README's are made).
"""

import os
import shutil
import socket
import time
from pathlib import Path

import fiftyone as fo
import pytest

import fiftyone_condense as fc
from fiftyone_condense.apps import html_report

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


def screenshot(page, tmp_path: Path, name: str, clip=None) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), clip=clip)
    if os.environ.get("CONDENSE_SCREENSHOTS_DIR"):
        shutil.copy(path, Path(os.environ["CONDENSE_SCREENSHOTS_DIR"]) / path.name)


PANEL_CONTENT = "[data-cy='panel-content-condense_panel']"
DISTILLED_IPCS = (1, 2, 5)
OPENED = "dm_ipc5"


def condense_with_the_sdk(dataset) -> None:
    """A real, short DM distillation per IPC (20 iterations; the full protocol is 20k), then every run
    evaluated with a tiny hard protocol beside its random and whole-split references."""
    train = dataset.match_tags("train")
    for ipc in DISTILLED_IPCS:
        fc.distill(train, method="dm", ipc=ipc, iterations=20, batch_real=16, run_key=f"dm_ipc{ipc}")
    for run_key in fc.list_runs(dataset):
        fc.evaluate(run_key=run_key, dataset=dataset, epochs=10, num_models=2, include_full=True, full_epochs=10)


def test_select_coreset_from_the_operator_browser_then_open_a_distillation_in_the_panel(app, tmp_path):
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
            execute = page.get_by_role("button", name="Execute")
            wait_until(execute.is_enabled, 60, "the form to be validated")
            page.wait_for_timeout(500)
            screenshot(page, tmp_path, "operator-form")
            execute.click()

            def recorded() -> bool:  # registering the run is its last write (after its saved view)
                dataset.reload()
                return dataset.has_saved_view("condense-random_ipc10") and "random_ipc10" in fc.list_runs(dataset)

            wait_until(recorded, 120, "the run to be recorded")
            assert fc.list_runs(dataset) == ["random_ipc10"]
            assert dataset.count_sample_tags()["condense:random_ipc10"] == 100
            assert len(dataset.load_saved_view("condense-random_ipc10")) == 100
            page.get_by_text("done", exact=True).wait_for(timeout=30_000)  # the live progress bar ends at 100 %
            page.get_by_role("button", name="Done").click()

            condense_with_the_sdk(dataset)
            page.locator("[data-cy='new-panel-btn']").first.click()
            page.get_by_text("Condensation", exact=True).first.click()
            page.get_by_text("Condensation runs (4)", exact=False).wait_for(timeout=60_000)
            page.get_by_role("cell", name="random_ipc10").wait_for(timeout=30_000)

            page.get_by_role("row").filter(has_text=OPENED).get_by_role("button", name="Open").click()
            mosaic = page.get_by_alt_text(f"Images of {OPENED}")
            mosaic.wait_for(timeout=60_000)
            wait_until(lambda: mosaic.evaluate("image => image.complete && image.naturalHeight") > 500, 30,
                       "the browser to decode the images per class")  # ten rows of 56 px
            page.get_by_text("Per-class test accuracy").first.wait_for(timeout=30_000)
            page.get_by_text("Bytes on disk").wait_for(timeout=30_000)
            # per class, densities, accuracy against IPC, each with its legend
            assert page.locator(f"{PANEL_CONTENT} .js-plotly-plot").count() == 3
            for legend in ("random reference", "whole source split (200 images)", "source gray", f"{OPENED} gray"):
                assert page.locator(f"{PANEL_CONTENT} .legendtext", has_text=legend).count() >= 1, legend
            wait_until(lambda: page.get_by_text("50 samples").count() > 0, 60,
                       "the grid to show the opened run's saved view")

            # the README's pictures: the grid beside the panel, then the whole panel
            page.set_viewport_size({"width": 1800, "height": 1000})
            page.mouse.move(5, 995)  # no tooltip in the picture
            page.locator(PANEL_CONTENT).locator("div").first.evaluate("element => element.scrollTo(0, 0)")
            page.wait_for_timeout(3000)  # let the grid load the run's thumbnails and the plots resize
            screenshot(page, tmp_path, "condense-panel")
            page.set_viewport_size({"width": 1800, "height": 3600})  # the whole opened run, plots and buttons
            page.wait_for_timeout(1500)
            panel = page.locator(PANEL_CONTENT).bounding_box()
            refresh = page.get_by_role("button", name="Refresh").bounding_box()
            screenshot(page, tmp_path, "condense-run-report", clip={
                "x": panel["x"], "y": panel["y"], "width": panel["width"],
                "height": refresh["y"] + refresh["height"] + 12 - panel["y"]})

            open_the_downloaded_report(browser, page, dataset, tmp_path)
        finally:
            browser.close()
    assert (tmp_path / "operator-form.png").stat().st_size > 10_000
    assert (tmp_path / "condense-panel.png").stat().st_size > 10_000
    assert (tmp_path / "condense-run-report.png").stat().st_size > 10_000
    assert (tmp_path / "condense-html-report.png").stat().st_size > 10_000


def open_the_downloaded_report(browser, page, dataset, tmp_path: Path) -> None:
    """**Write report** in the panel: the report is written beside the media and downloaded through the
    App; the downloaded file, opened from disk with the network cut off, shows its plots and images."""
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Write report").click()
    downloaded = tmp_path / "condense-report.html"
    download.value.save_as(downloaded)
    page.get_by_text("Report written to", exact=False).wait_for(timeout=30_000)
    assert downloaded.read_bytes() == Path(html_report.default_path(dataset)).read_bytes()
    print(f"\nthe HTML report: {downloaded}")

    offline = browser.new_context(viewport={"width": 1200, "height": 1500}, offline=True)
    try:
        report = offline.new_page()
        report.goto(downloaded.as_uri())
        report.get_by_role("heading", name=OPENED).wait_for(timeout=30_000)
        decoded = report.evaluate("() => [...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
        assert decoded == report.evaluate("() => document.images.length") > 2 * len(DISTILLED_IPCS)
        screenshot(report, tmp_path, "condense-html-report")
    finally:
        offline.close()
