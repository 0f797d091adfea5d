"""The panel's data (runs table, accuracy traces, colour report) and its events."""

import fiftyone.operators as foo

import fiftyone_condense as fc
from fiftyone_condense import reports

PANEL = "@condense/fiftyone-condense/condense_panel"


def test_run_rows_list_every_run_with_its_accuracy_and_parent(dataset):
    train = dataset.match_tags("train")
    fc.select(train, method="random", ipc=2, run_key="rand")
    fc.evaluate(run_key="rand", dataset=dataset, epochs=1, num_models=1)
    fc.compensate(dataset.load_saved_view("condense-rand"), run_key="warmcold", backend="classical", edit_size=32)
    rows = {row["key"]: row for row in reports.run_rows(dataset)}
    assert set(rows) == {"rand", "warmcold"}
    assert rows["rand"]["method"] == "random" and rows["rand"]["ipc"] == 2 and rows["rand"]["hard"] is not None
    assert rows["warmcold"]["parent"] == "rand" and rows["warmcold"]["bytes"] > 0 and rows["warmcold"]["soft"] is None


def test_accuracy_traces_plot_methods_against_ipc_with_the_random_reference(dataset):
    train = dataset.match_tags("train")
    for ipc in (1, 2):
        fc.select(train, method="herding", ipc=ipc, run_key=f"h{ipc}", teacher_epochs=1)
        fc.evaluate(run_key=f"h{ipc}", dataset=dataset, epochs=1, num_models=1)
    traces = {trace["name"]: trace for trace in reports.accuracy_traces(dataset)}
    assert traces["herding"]["x"] == [1, 2] and len(traces["herding"]["error_y"]["array"]) == 2
    assert traces["random reference"]["x"] == [1, 2]


def test_colour_report_compares_a_run_with_its_source(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="r1")
    report = reports.color_report(dataset, "r1")
    assert {t["name"] for t in report["kde_traces"]} == {"source gray", "r1 gray"}
    assert report["colorfulness"] == {"source": 0.0, "run": 0.0}


def test_panel_loads_and_renders_through_fiftyone(dataset):
    fc.select(dataset.match_tags("train"), method="random", ipc=1, run_key="shown")
    result = foo.execute_operator(PANEL, ctx={"dataset": dataset, "params": {"__method__": "on_load", "panel_id": "p1", "state": {}}})
    assert result.error is None, result.error
    panel = [op for op in foo.list_operators(type="panel") if op.uri == PANEL]
    assert panel and panel[0].config.label == "Condensation"
