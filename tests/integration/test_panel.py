"""The panel's data (runs table, accuracy traces, per-run report with its image mosaic) and its events."""

import base64
import io
import os
from urllib.parse import quote

import fiftyone.operators as foo
import pytest
from PIL import Image

import fiftyone_condense as fc
from fiftyone_condense.apps import html_report, reports, run_details

PANEL = "@condense/fiftyone-condense/condense_panel"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_run_rows_list_every_run_with_its_accuracy_and_parent(dataset):
    train = dataset.match_tags("train")
    fc.select(train, method="random", ipc=2, run_key="rand")
    fc.evaluate(run_key="rand", dataset=dataset, epochs=1, num_models=1)
    fc.compensate(dataset.load_saved_view("condense-rand"), run_key="warmcold", backend="classical", edit_size=32)
    rows = {row["key"]: row for row in reports.run_rows(dataset)}
    assert set(rows) == {"rand", "warmcold"}
    assert rows["rand"]["method"] == "random" and rows["rand"]["ipc"] == 2 and rows["rand"]["hard"] is not None
    assert rows["warmcold"]["parent"] == "rand" and rows["warmcold"]["bytes"] > 0 and rows["warmcold"]["soft"] is None


def test_accuracy_traces_plot_methods_against_ipc_with_the_random_and_whole_split_references(dataset):
    train = dataset.match_tags("train")
    for ipc in (1, 2):
        fc.select(train, method="herding", ipc=ipc, run_key=f"h{ipc}", teacher_epochs=1)
        fc.evaluate(run_key=f"h{ipc}", dataset=dataset, epochs=1, num_models=1, include_full=ipc == 2, full_epochs=1)
    traces = {trace["name"]: trace for trace in reports.accuracy_traces(dataset)}
    assert traces["herding"]["x"] == [1, 2] and len(traces["herding"]["error_y"]["array"]) == 2
    assert traces["herding"]["text"] == ["h1", "h2"]
    assert traces["random reference"]["x"] == [1, 2] and traces["random reference"]["line"]["dash"] == "dot"
    full = traces["whole source split (200 images)"]
    assert full["x"] == [1, 2] and full["y"][0] == full["y"][1]
    evaluation = fc.load_run(dataset, "h2").results["evaluation"]["hard"]
    assert full["y"][0] == round(100 * evaluation["full"]["mean"], 2)
    scores = evaluation["scores"]  # DD-Ranking's, stored with both references and shown in the summary
    assert scores["ior_mean"] == pytest.approx(100 * (evaluation["mean"] - evaluation["random"]["mean"]))
    assert scores["hlr_mean"] == pytest.approx(100 * (evaluation["full"]["mean"] - evaluation["mean"]))
    assert "DD-Ranking HLR" in run_details.run_summary(fc.load_run(dataset, "h2"))
    assert "scores" not in fc.load_run(dataset, "h1").results["evaluation"]["hard"]  # no whole split: no scores
    assert set(reports.accuracy_figures(dataset)) == {"hard"}  # no soft evaluation: no soft plot

    rows = reports.per_class_rows(dataset, "h2")  # the whole split per class too, where it was trained
    assert sorted(row["class"] for row in rows) == sorted(CLASSES)
    by_class = {row["class"]: row for row in rows}
    for name, value in zip(CLASSES, evaluation["full"]["per_class"]):
        assert by_class[name]["full"] == round(100 * value, 1)
    assert "whole split" in reports.weakest_classes(rows) and "whole split %" in reports.per_class_markdown(rows)


def test_per_class_rows_sort_the_worst_classes_first_and_name_them(dataset):
    """Without a run too: the dict fc.evaluate returns for a view, named by the dataset's classes."""
    per_class = [0.5, 0.9, 0.2, 0.4, 0.6, 0.7, 0.3, 0.8, 1.0, float("nan")]  # Ankle boot: no test images
    random = [0.4, 0.95, 0.5, 0.4, 0.6, 0.7, 0.35, 0.8, 0.9, 0.5]
    evaluation = {"per_class": per_class, "label_field": "ground_truth", "random": {"per_class": random}}
    rows = reports.per_class_rows(dataset, evaluation)
    assert [row["class"] for row in rows[:3]] == ["Pullover", "Shirt", "Trouser"]  # -30, -5, -5 points
    assert rows[0] == {"class": "Pullover", "accuracy": 20.0, "random": 50.0, "full": None, "vs_random": -30.0}
    assert rows[-1] == {"class": "Ankle boot", "accuracy": None, "random": 50.0, "full": None, "vs_random": None}
    assert reports.weakest_classes(rows) == (
        "**Weakest classes** (against random): Pullover 20% (random 50%), Shirt 30% (random 35%), "
        "Trouser 90% (random 95%) · 3 of 10 classes below random")
    table = reports.per_class_markdown(rows, limit=3).splitlines()
    assert table[:3] == ["| class | run % | random % | vs random |", "|---|---:|---:|---:|",
                         "| Pullover | 20.0 | 50.0 | -30.0 |"]
    assert table[-1] == "… and 7 more classes (all in the bars above)"
    bars = reports.per_class_traces(dataset, evaluation)
    assert [trace["name"] for trace in bars] == ["condensed set", "random reference"]
    assert bars[0]["x"] == CLASSES and bars[0]["y"][-1] is None  # NaN is not JSON

    alone = reports.per_class_rows(dataset, {"per_class": per_class, "classes": [c.upper() for c in CLASSES]})
    assert [row["class"] for row in alone[:2]] == ["PULLOVER", "SHIRT"]  # no reference: lowest accuracy first
    assert reports.weakest_classes(alone).startswith("**Weakest classes** (lowest accuracy): PULLOVER 20%, SHIRT 30%")
    assert reports.per_class_rows(dataset, {"mean": 0.5}) == []


def test_colour_report_compares_a_run_with_its_source(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="r1")
    report = run_details.color_report(dataset, "r1")
    assert {t["name"] for t in report["kde_traces"]} == {"source gray", "r1 gray"}
    assert report["colorfulness"] == {"source": 0.0, "run": 0.0}


def test_run_report_of_a_distillation_shows_its_images_per_class_accuracy_colours_and_bytes(dataset):
    train = dataset.match_tags("train")
    fc.distill(train, method="dm", ipc=2, iterations=2, batch_real=8, run_key="dm2")
    report = run_details.run_report(dataset, "dm2")
    assert report["per_class_traces"] == [] and report["per_class_protocol"] is None  # not evaluated yet

    fc.evaluate(run_key="dm2", dataset=dataset, epochs=1, num_models=1)
    report = run_details.run_report(dataset, "dm2")
    assert report["summary"].startswith("**dm2**: distillation `dm` · IPC 2 · 20 images")
    assert "hard accuracy" in report["summary"] and "random" in report["summary"]

    assert report["mosaic"].startswith("data:image/png;base64,")
    mosaic = Image.open(io.BytesIO(base64.b64decode(report["mosaic"].split(",", 1)[1])))
    cell, pad = 56, 4
    assert mosaic.height == 10 * (cell + pad) + pad  # one row per class
    tiles = mosaic.crop((mosaic.width - pad - 2 * (cell + pad), pad, mosaic.width - pad, pad + cell)).convert("L")
    assert max(tiles.getdata()) > 100  # the distilled images are drawn (not the empty background)

    bars = {trace["name"]: trace for trace in report["per_class_traces"]}
    assert set(bars) == {"dm2", "random reference"} and report["per_class_protocol"] == "hard"
    assert bars["dm2"]["x"] == CLASSES and len(bars["dm2"]["y"]) == 10
    assert all(0 <= value <= 100 for value in bars["dm2"]["y"])

    # per class, by name, against the random reference, worst first
    evaluation = fc.load_run(dataset, "dm2").results["evaluation"]["hard"]
    rows = report["per_class"]
    assert sorted(row["class"] for row in rows) == sorted(CLASSES)
    by_class = {row["class"]: row for row in rows}
    for index, name in enumerate(CLASSES):
        row = by_class[name]
        assert row["accuracy"] == round(100 * evaluation["per_class"][index], 1) == bars["dm2"]["y"][index]
        assert row["random"] == round(100 * evaluation["random"]["per_class"][index], 1)
        gain = evaluation["per_class"][index] - evaluation["random"]["per_class"][index]
        assert row["vs_random"] == round(100 * gain, 1)
        assert row["full"] is None
    assert [row["vs_random"] for row in rows] == sorted(row["vs_random"] for row in rows)
    worst = rows[0]
    assert report["per_class_weakest"].startswith(f"**Weakest classes** (against random): {worst['class']} "
                                                  f"{worst['accuracy']:.0f}% (random {worst['random']:.0f}%)")
    below = sum(row["vs_random"] < 0 for row in rows)
    assert report["per_class_weakest"].endswith(f"{below} of 10 classes below random")

    assert {t["name"] for t in report["color"]["kde_traces"]} == {"source gray", "dm2 gray"}
    storage = {row["what"]: row for row in report["storage"]}
    results = fc.load_run(dataset, "dm2").results
    assert storage["this run's images on disk"]["bytes"] == results["bytes"]
    assert storage["the same images as 8-bit PNGs"]["bytes"] == results["bytes_8bit"]
    assert storage["… as 8-bit RGB PNGs"]["bytes"] == results["bytes_8bit_rgb"]
    assert storage["the view it was made from"]["images"] == 200
    assert "| this run's images on disk |" in run_details.storage_markdown(report["storage"])


def test_image_mosaic_of_a_selection_has_a_row_per_class_and_the_selected_pixels(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=3, run_key="r3")
    mosaic = Image.open(io.BytesIO(run_details.image_mosaic(dataset, "r3", per_class=2, cell=28)))
    assert mosaic.height == 10 * (28 + 4) + 4
    first = fc.load_run(dataset, "r3").view.match({"ground_truth.label": "T-shirt/top"}).first()
    # two columns (per_class=2), the class's first selected image 28 px wide as stored
    left = mosaic.width - 4 - 2 * (28 + 4)  # the image columns end one gap before the edge
    assert list(mosaic.crop((left, 4, left + 28, 32)).convert("L").getdata()) == \
        list(Image.open(first.filepath).convert("L").getdata())
    storage = {row["what"]: row for row in run_details.storage_report(dataset, "r3")}
    assert storage["this run's images on disk"]["images"] == 30 and storage["this run's images on disk"]["bytes"] > 0


def test_run_report_of_a_colour_compensation_compares_rgb_densities_and_sizes(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="base")
    fc.compensate(dataset.load_saved_view("condense-base"), run_key="warm", backend="classical", edit_size=32)
    report = run_details.run_report(dataset, "warm")
    assert report["summary"] == ("**warm**: compensation `dc3_compensation (gradient)` · classical backend · "
                                 "10 images · from `base`")
    assert {t["name"] for t in report["color"]["kde_traces"]} >= {"warm red", "warm green", "warm blue"}
    assert report["color"]["colorfulness"]["run"] > report["color"]["colorfulness"]["source"] == 0.0
    assert report["per_class_traces"] == []
    storage = {row["what"]: row for row in report["storage"]}
    assert set(storage) == {"this run's images on disk", "the view it was made from"}
    assert storage["this run's images on disk"]["images"] == 10
    assert Image.open(io.BytesIO(base64.b64decode(report["mosaic"].split(",", 1)[1]))).height == 10 * 60 + 4


def _panel_event(dataset, method, state, **params) -> dict:
    """Run a panel event as the App does; what it sent back: {operator uri: [params, ...]}."""
    result = foo.execute_operator(PANEL, ctx={"dataset": dataset, "params": {
        "__method__": method, "panel_id": "p1", "panel_state": state, **params}})
    assert result.error is None, result.error
    sent = {}
    for request in result.to_json()["executor"]["requests"]:
        sent.setdefault(request["operator_uri"], []).append(request["params"])
    return sent


def test_panel_loads_and_renders_through_fiftyone(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="shown")
    sent = _panel_event(dataset, "on_load", {})
    assert [row["key"] for row in sent["patch_panel_state"][0]["state"]["rows"]] == ["shown"]
    assert "rows" in sent["show_panel_output"][0]["output"]["type"]["properties"]
    panel = [op for op in foo.list_operators(type="panel") if op.uri == PANEL]
    assert panel and panel[0].config.label == "Condensation"


def test_opening_a_run_in_the_panel_sends_its_view_images_and_plots(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="opened")
    fc.evaluate(run_key="opened", dataset=dataset, epochs=1, num_models=1)
    sent = _panel_event(dataset, "on_select_run", {"rows": reports.run_rows(dataset)}, row=0)
    assert sent["set_view"] == [{"name": "condense-opened"}]  # the grid shows the run's saved view
    data = {key: value for patch in sent["patch_panel_data"] for key, value in patch["data"].items()}
    assert data["mosaic"].startswith("data:image/png;base64,")
    assert data["per_class"][0]["type"] == "bar" and data["kde"][0]["type"] == "scatter"
    shown = sent["show_panel_output"][0]["output"]["type"]["properties"]
    assert {"mosaic", "per_class", "weakest_md", "per_class_table_md", "kde", "storage_md", "actions"} <= set(shown)
    assert data["per_class"][0]["x"] == CLASSES  # the bars are labelled with the class names
    run = next(patch["state"]["run"] for patch in sent["patch_panel_state"] if "run" in patch["state"])
    rows = reports.per_class_rows(dataset, "opened")
    assert run["weakest"] == reports.weakest_classes(rows) and rows[0]["class"] in run["weakest"]
    assert run["per_class_table"].startswith("| class | run % | random % | vs random |")
    assert shown["mosaic"]["view"]["name"] == "ImageView"


def test_write_report_in_the_panel_writes_the_html_report_and_has_the_browser_download_it(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="reported")
    sent = _panel_event(dataset, "on_write_report", {"rows": reports.run_rows(dataset)})
    path = next(patch["state"]["report"] for patch in sent["patch_panel_state"] if "report" in patch["state"])
    assert path == str(html_report.default_path(dataset)) and 'id="run-reported"' in open(path).read()
    assert sent["browser_download"] == [{"url": f"/media?filepath={quote(path, safe='')}",
                                         "filename": f"{dataset.name}-report.html"}]
    shown = sent["show_panel_output"][0]["output"]["type"]["properties"]
    assert "report_md" in shown and "write_report" in shown["footer"]["type"]["properties"]
    os.remove(path)
