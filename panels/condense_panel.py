"""The Condensation panel: runs, their images, accuracy against IPC and colour statistics.

Thin: the data comes from :mod:`fiftyone_condense.apps.reports`; buttons open the plugin's
operators prefilled for the selected run, and **Write report** writes ``fc.report`` and has the
browser download it.
"""

import os
from urllib.parse import quote

import fiftyone.operators as foo
import fiftyone.operators.types as types

import fiftyone_condense as fc
from fiftyone_condense.apps import reports, run_details

PLUGIN = "@condense/fiftyone-condense"
PLOT_HEIGHT = 340


def _layout(title: str, x: str, y: str, **extra) -> dict:
    """A plot's layout: title, axis titles and a legend (the App hides legends unless asked)."""
    return {"title": {"text": title}, "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
            "height": PLOT_HEIGHT, "margin": {"t": 40, "b": 50}, "showlegend": True, **extra}


class CondensePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="condense_panel", label="Condensation", icon="compress", surfaces="grid",
            help_markdown="Condensation runs of this dataset: open one to see its images, accuracy and colours.",
        )

    # -- events
    def on_load(self, ctx):
        fc.recover(ctx.dataset)  # what a killed run left half-written is undone before it is shown
        self._refresh(ctx, reopen=True)  # panel data (images, plots) is not persisted

    def on_change_dataset(self, ctx):
        ctx.panel.state.selected = None
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def on_refresh(self, ctx):
        self._refresh(ctx, reopen=True)  # its evaluation or colours may have changed

    def on_select_run(self, ctx):
        row = ctx.params.get("row")
        rows = ctx.panel.get_state("rows") or []
        if isinstance(row, dict):  # some App versions send the row itself
            key = row.get("key")
        elif row is not None and 0 <= int(row) < len(rows):
            key = rows[int(row)]["key"]
        else:
            return
        self._show_run(ctx, key)
        ctx.panel.state.selected = key
        ctx.ops.set_view(name=f"condense-{key}")  # last: the view change is an event of its own

    def on_evaluate(self, ctx):
        self._prompt(ctx, "evaluate_condensed", {"run_key": ctx.panel.state.selected})

    def on_compensate(self, ctx):
        self._prompt(ctx, "compensate_colors", {"parent": ctx.panel.state.selected})

    def on_distill(self, ctx):
        self._prompt(ctx, "distill_dataset", {"init": ctx.panel.state.selected})

    def on_delete(self, ctx):
        self._prompt(ctx, "delete_condensation_run", {"run_key": ctx.panel.state.selected})

    def on_write_report(self, ctx):
        """Write the HTML report beside the dataset's media and download it through the App's media route."""
        try:
            path = fc.report(ctx.dataset)
        except fc.CondensationError as error:
            ctx.ops.notify(str(error), variant="error")
            return
        ctx.panel.state.report = path
        ctx.ops.browser_download(f"/media?filepath={quote(path, safe='')}",
                                 filename=f"{ctx.dataset.name}-{os.path.basename(path)}")

    # -- helpers
    def _prompt(self, ctx, operator, params):
        if ctx.panel.state.selected:
            ctx.prompt(f"{PLUGIN}/{operator}", params=params, on_success=self.on_refresh)

    def _refresh(self, ctx, reopen=False):
        runs = reports.load_runs(ctx.dataset)
        rows = reports.run_rows(ctx.dataset, runs)
        ctx.panel.state.rows = rows
        figures = reports.accuracy_figures(ctx.dataset, runs)
        for protocol in reports.PROTOCOLS:
            ctx.panel.set_data(f"accuracy_{protocol}", figures.get(protocol, []))
        ctx.panel.state.accuracy_protocols = list(figures)
        selected = ctx.panel.state.selected
        if selected and selected not in {row["key"] for row in rows}:  # deleted or renamed
            ctx.panel.state.selected = None
            ctx.panel.state.run = None
        elif selected and reopen:
            self._show_run(ctx, selected)

    def _show_run(self, ctx, key):
        report = run_details.run_report(ctx.dataset, key)
        ctx.panel.set_data("mosaic", report["mosaic"])
        ctx.panel.set_data("per_class", report["per_class_traces"])
        ctx.panel.set_data("kde", report["color"]["kde_traces"])
        ctx.panel.state.run = {
            "summary": report["summary"],
            "protocol": report["per_class_protocol"] if report["per_class_traces"] else None,
            "weakest": report["per_class_weakest"],
            "per_class_table": reports.per_class_markdown(report["per_class"]),
            "colorfulness": report["color"]["colorfulness"],
            "unique_colors": report["color"]["unique_colors"],
            "storage": run_details.storage_markdown(report["storage"]),
        }

    # -- layout
    def render(self, ctx):
        panel = types.Object()
        rows = ctx.panel.get_state("rows") or []
        panel.md(f"**Condensation runs ({len(rows)})** — open a run to see its images, accuracy and colours",
                 name="title")
        if not rows:
            panel.md("No runs yet: use **Condense: select coreset** (or distil) from the operator browser.",
                     name="empty")
        table = types.TableView()
        for key in reports.visible_columns(rows):
            table.add_column(key, label=reports.COLUMN_LABELS[key])
        table.add_row_action("open", self.on_select_run, label="Open", icon="visibility",
                             tooltip="Show this run's images")
        panel.list("rows", types.Object(), view=table)
        run = ctx.panel.get_state("run")
        if ctx.panel.get_state("selected") and run:
            self._render_run(panel, ctx.panel.get_state("selected"), run)
        for protocol in ctx.panel.get_state("accuracy_protocols") or []:
            panel.plot(f"accuracy_{protocol}", layout=_layout(
                f"{protocol.capitalize()}-protocol accuracy against IPC (all evaluated runs)", "images per class",
                "test accuracy %"))
        footer = panel.h_stack("footer", gap=1)
        footer.btn("refresh", label="Refresh", on_click=self.on_refresh, icon="refresh")
        footer.btn("write_report", label="Write report", on_click=self.on_write_report, icon="description")
        if ctx.panel.get_state("report"):
            panel.md(f"Report written to `{ctx.panel.get_state('report')}` (one HTML file that opens offline) "
                     "and downloaded by your browser.", name="report_md")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))

    def _render_run(self, panel, selected, run):
        panel.md(f"{run['summary']} — its saved view `condense-{selected}` is in the grid.", name="selected_md")
        actions = panel.h_stack("actions", gap=1)
        actions.btn("evaluate", label="Evaluate", on_click=self.on_evaluate, variant="contained")
        actions.btn("compensate", label="Compensate colours", on_click=self.on_compensate)
        actions.btn("distill", label="Distil from it", on_click=self.on_distill)
        actions.btn("delete", label="Delete…", on_click=self.on_delete, variant="outlined")
        panel.md("**Images per class**", name="mosaic_title")
        panel.img("mosaic", alt_text=f"Images of {selected}", point_on_hover=False,
                  componentsProps={"image": {"style": {"maxWidth": "100%", "height": "auto"}}})
        if run.get("protocol"):
            panel.plot("per_class", layout=_layout(f"Per-class test accuracy ({run['protocol']} protocol)", "class",
                                                   "accuracy %", barmode="group"))
            if run.get("weakest"):
                panel.md(run["weakest"], name="weakest_md")
            if run.get("per_class_table"):
                panel.md("**Per-class accuracy, worst first**\n\n" + run["per_class_table"], name="per_class_table_md")
        else:
            panel.md("Not evaluated yet: **Evaluate** trains models on these images for per-class accuracy.",
                     name="per_class_md")
        colorfulness, unique = run["colorfulness"], run["unique_colors"]
        panel.plot("kde", layout=_layout("Pixel value density per channel: source (dotted) and run", "pixel value",
                                         "density"))
        panel.md(f"Colourfulness: source {colorfulness['source']:.1f} → run {colorfulness['run']:.1f}; "
                 f"unique colours per image: {unique['source']:.0f} → {unique['run']:.0f}", name="colors_md")
        panel.md("**Bytes on disk**\n\n" + run["storage"], name="storage_md")
