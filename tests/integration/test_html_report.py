"""fc.report: one self-contained HTML file of a dataset's runs, read back with the standard library's parser."""

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from small_dataset import CLASSES

import fiftyone_condense as fc

ODD_CLASS = 'stripe <i>&"$1'  # HTML and matplotlib's mathtext both have to take it as text


class Page(HTMLParser):
    """Every element with its attributes, and the page's text, as the parser sees them."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.images_grid_sources: list[str] = []  # the img src inside <table class="images">
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "table":
            self.open.append(attrs.get("class") or "")
        if tag == "img" and "images" in self.open:
            self.images_grid_sources.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self.open.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def attributes(self, tag: str, name: str) -> list[str]:
        return [attrs[name] for element, attrs in self.elements if element == tag and name in attrs]


def png_of(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_report_holds_every_run_its_settings_plots_scores_bytes_and_images_offline(small, tmp_path):
    small.match({"ground_truth.label": "stripe"}).set_values("ground_truth.label", [ODD_CLASS] * 12)
    train = small.match_tags("train")
    for ipc in (1, 2):
        fc.select(train, method="random", ipc=ipc, run_key=f"rand{ipc}", seed=ipc)
        fc.evaluate(run_key=f"rand{ipc}", dataset=small, epochs=1, num_models=2, include_full=ipc == 2, full_epochs=1)
    fc.distill(train, method="dm", ipc=2, iterations=2, batch_real=4, run_key="dm2")

    path = fc.report(small, tmp_path / "out" / "condensation.html", per_class=2, thumbnail_size=32)
    assert path == str(tmp_path / "out" / "condensation.html")
    text = Path(path).read_text(encoding="utf-8")
    page = Page(text)
    words = page.all_text()

    # self-contained: no script, stylesheet or frame, every image inline, links only within the page
    assert not {tag for tag, _ in page.elements} & {"script", "link", "iframe", "object", "embed"}
    sources = page.attributes("img", "src")
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert all(href.startswith("#") for href in page.attributes("a", "href"))
    assert "http://" not in text and "https://" not in text
    anchors = set(page.attributes("h2", "id"))

    for key in ("rand1", "rand2", "dm2"):
        assert f"run-{key}" in anchors and key in words
    # settings: method, budget, seed and versions of each run
    assert "method random" in words and "ipc 2" in words and "seed 2" in words and "method dm" in words
    assert "versions.fiftyone_condense 0.1.0" in words and "budget.per_class circle 2, square 2," in words
    # evaluation settings beside the accuracy and its references
    assert "arch convnet3 · epochs 1 · num_models 2" in words

    # accuracy against IPC: one plot (hard protocol), random and the whole split beside it
    figures = [attrs["src"] for tag, attrs in page.elements if tag == "img" and "hard protocol" in attrs.get("alt", "")]
    assert len(figures) == 1 and png_of(figures[0]).width > 400
    # DD-Ranking scores of the run evaluated with both references
    scores = fc.load_run(small, "rand2").results["evaluation"]["hard"]["scores"]
    assert f"rand2 hard {scores['hlr_mean']:.1f} ± {scores['hlr_std']:.1f}" in words
    assert f"{scores['lrs_mean']:.4g} ± {scores['lrs_std']:.4g} 2" in words
    # per-class accuracy (evaluated runs only), by class name, escaped
    assert words.count("Per-class accuracy (hard protocol), worst first") == 2
    assert "circle" in words and ODD_CLASS in words  # the parser unescapes what the writer escaped
    assert "<i>" not in text and "&lt;i&gt;" in text
    # bytes on disk
    assert words.count("Bytes on disk") == 3 and "the view it was made from" in words

    # the image grids: up to per_class (2) thumbnails of each class of each run (IPC 1, 2 and 2)
    assert len(page.images_grid_sources) == len(CLASSES) * (1 + 2 + 2)
    assert {png_of(src).size for src in page.images_grid_sources} == {(32, 32)}
    titles = page.attributes("img", "alt")
    assert titles.count(ODD_CLASS) == 1 + 2 + 2


def test_report_of_a_dataset_without_runs_says_so_and_goes_beside_the_media_by_default(small):
    path = Path(fc.report(small.match_tags("train")))  # a view reports its dataset
    media = Path(small.first().filepath).parent
    assert path == media.parent / "condense" / small.name / "report.html"
    page = Page(path.read_text(encoding="utf-8"))
    assert "No condensation runs on this dataset yet" in page.all_text()
    assert small.name in page.all_text()
    path.unlink()


def test_report_replaces_a_file_whole_and_refuses_a_folder_or_an_unwritable_place(small, tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    target = folder / "report.html"
    target.write_text("old")
    fc.report(small, target)
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    with pytest.raises(fc.CondensationError, match="is a folder: give the report a file name"):
        fc.report(small, folder)
    blocker = folder / "a-file"
    blocker.write_text("")
    with pytest.raises(fc.CondensationError, match="Cannot write the report to .*a-file/report.html"):
        fc.report(small, blocker / "report.html")
    with pytest.raises(fc.CondensationError, match="per_class must be a positive number"):
        fc.report(small, target, per_class=0)
    assert sorted(p.name for p in folder.iterdir()) == ["a-file", "report.html"]  # no temporary file left
