"""The Condensation panel: runs, their images, accuracy against IPC and colour statistics.

Thin: the data comes from :mod:`fiftyone_condense.reports`; buttons open the plugin's
operators prefilled for the selected run.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_condense import reports

PLUGIN = "@condense/fiftyone-condense"
COLUMN_LABELS = {"key": "Run", "method": "Method", "ipc": "IPC", "parent": "Parent", "seconds": "Time (s)",
                 "hard": "Hard acc. %", "soft": "Soft acc. %", "bytes": "Bytes", "samples": "Samples"}


class CondensePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="condense_panel", label="Condensation", icon="compress", surfaces="grid",
            help_markdown="Condensation runs of this dataset: open one to see its images, accuracy and colours.",
        )

    # -- events
    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        ctx.panel.state.selected = None
        self._refresh(ctx)

    def on_change_view(self, ctx):
        self._refresh(ctx)

    def on_refresh(self, ctx):
        self._refresh(ctx)

    def on_select_run(self, ctx):
        row = ctx.params.get("row")
        rows = ctx.panel.get_state("rows") or []
        if isinstance(row, dict):  # some App versions send the row itself
            key = row.get("key")
        elif row is not None and 0 <= int(row) < len(rows):
            key = rows[int(row)]["key"]
        else:
            return
        ctx.panel.state.selected = key
        ctx.ops.set_view(name=f"condense-{key}")
        report = reports.color_report(ctx.dataset, key)
        ctx.panel.state.colors = {"colorfulness": report["colorfulness"], "unique_colors": report["unique_colors"]}
        ctx.panel.data.kde = report["kde_traces"]

    def on_evaluate(self, ctx):
        self._prompt(ctx, "evaluate_condensed", {"run_key": ctx.panel.state.selected})

    def on_compensate(self, ctx):
        self._prompt(ctx, "compensate_colors", {"parent": ctx.panel.state.selected})

    def on_distill(self, ctx):
        self._prompt(ctx, "distill_dataset", {"init": ctx.panel.state.selected})

    def on_delete(self, ctx):
        self._prompt(ctx, "delete_condensation_run", {"run_key": ctx.panel.state.selected})

    # -- helpers
    def _prompt(self, ctx, operator, params):
        if ctx.panel.state.selected:
            ctx.prompt(f"{PLUGIN}/{operator}", params=params, on_success=self.on_refresh)

    def _refresh(self, ctx):
        rows = reports.run_rows(ctx.dataset)
        ctx.panel.state.rows = rows
        traces = reports.accuracy_traces(ctx.dataset, "hard")
        ctx.panel.data.accuracy = traces
        ctx.panel.state.has_accuracy = bool(traces)
        if ctx.panel.state.selected not in {row["key"] for row in rows}:
            ctx.panel.state.selected = None

    # -- layout
    def render(self, ctx):
        panel = types.Object()
        rows = ctx.panel.get_state("rows") or []
        panel.md(f"**Condensation runs ({len(rows)})** — open a run to see its images and colours", name="title")
        if not rows:
            panel.md("No runs yet: use **Condense: select coreset** (or distil) from the operator browser.", name="empty")
        table = types.TableView()
        for key, label in COLUMN_LABELS.items():
            table.add_column(key, label=label)
        table.add_row_action("open", self.on_select_run, label="Open", icon="visibility", tooltip="Show this run's images")
        panel.list("rows", types.Object(), view=table)
        selected = ctx.panel.get_state("selected")
        if selected:
            panel.md(f"**Selected: `{selected}`** — its saved view `condense-{selected}` is in the grid.", name="selected_md")
            actions = panel.h_stack("actions", gap=1)
            actions.btn("evaluate", label="Evaluate", on_click=self.on_evaluate, variant="contained")
            actions.btn("compensate", label="Compensate colours", on_click=self.on_compensate)
            actions.btn("distill", label="Distil from it", on_click=self.on_distill)
            actions.btn("delete", label="Delete…", on_click=self.on_delete, variant="outlined")
            colors = ctx.panel.get_state("colors") or {}
            if colors:
                panel.md(
                    f"Colourfulness: source {colors['colorfulness']['source']:.1f} → run {colors['colorfulness']['run']:.1f}; "
                    f"unique colours per image: {colors['unique_colors']['source']:.0f} → {colors['unique_colors']['run']:.0f}",
                    name="colors_md",
                )
                panel.plot("kde", layout={"title": {"text": "Pixel value density per channel (KDE)"},
                                          "xaxis": {"title": {"text": "value"}}, "height": 300})
        if ctx.panel.get_state("has_accuracy"):
            panel.plot("accuracy", layout={"title": {"text": "Hard-protocol accuracy against IPC"},
                                           "xaxis": {"title": {"text": "images per class"}},
                                           "yaxis": {"title": {"text": "accuracy %"}}, "height": 320})
        panel.btn("refresh", label="Refresh", on_click=self.on_refresh, icon="refresh")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))
