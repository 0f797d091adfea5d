"""`make demo` end to end at a tiny size: every stage runs at every budget, both tables are printed,
and the plot and the report are written."""

from PIL import Image

from fiftyone_condense.apps import demo

TINY = ["--ipcs", "1,2", "--iterations", "2", "--batch-real", "4", "--init-epochs", "1", "--epochs", "1",
        "--num-models", "1", "--full-epochs", "1"]


def test_the_demo_runs_every_method_at_every_budget_and_prints_its_tables(dataset, capsys, tmp_path):
    ran = demo.main(["--dataset", dataset.name, *TINY, "--out", str(tmp_path)])
    printed = capsys.readouterr().out

    evaluated = ["herding, IPC 1", "herding, IPC 2", "dc3, IPC 2", "dm, IPC 1", "dm, IPC 2", "autopalette, IPC 2"]
    assert [(stage, method) for stage, method, _ in ran.timings] == [
        ("selection", "herding, IPC 1"), ("selection", "herding, IPC 2"), ("selection", "dc3, IPC 2"),
        ("distillation", "dm, IPC 1 (2 iterations)"), ("distillation", "dm, IPC 2 (2 iterations)"),
        ("distillation", "autopalette, IPC 2 (2 iterations)"),
        *[("evaluation", label) for label in evaluated],
    ]
    for stage, method, _ in ran.timings:
        assert f"| {stage} | {method} |" in printed
    assert "| **total** (after the dataset exists) |" in printed
    assert "REDUCED protocol" in printed and "1 epochs × 1 models" in printed
    assert "| IPC | condensed set | images / class | accuracy % | random, same size % | gain | PNG bytes |" in printed
    for row in ran.rows:
        assert row.result["random"]["num_train"] == row.result["num_train"]  # the reference has the same size
        assert f"| {row.ipc} | {row.label}" in printed
    assert "dc3 [" in printed and "offline fallbacks" in printed  # no VAE / ImageNet weights in the test session
    assert "| all | whole train split (1 epochs) | 20 |" in printed  # trained once, shared by every row
    assert set(dataset.list_runs()) == {"demo_herding_ipc1", "demo_herding_ipc2", "demo_dc3_ipc2", "demo_dm_ipc1",
                                        "demo_dm_ipc2", "demo_autopalette_ipc2"}
    assert Image.open(tmp_path / "accuracy-against-ipc.png").size[0] > 400
    assert "demo_dm_ipc2" in (tmp_path / "report.html").read_text()
    assert f"Accuracy against IPC: {tmp_path / 'accuracy-against-ipc.png'}" in printed
