"""`make demo` end to end at a tiny size: every stage runs, and both tables are printed."""

from fiftyone_condense.apps import demo

TINY = ["--ipc", "1", "--iterations", "2", "--batch-real", "4", "--init-epochs", "1", "--epochs", "1",
        "--num-models", "1", "--include-full", "--full-epochs", "1"]


def test_the_demo_runs_every_method_and_prints_its_tables(dataset, capsys):
    ran = demo.main(["--dataset", dataset.name, *TINY])
    printed = capsys.readouterr().out

    assert [(stage, method) for stage, method, _ in ran.timings] == [
        ("selection", "random"), ("selection", "herding"), ("selection", "dc3"),
        ("compensation", "dc3 + classical colour compensation"),
        ("distillation", "dm (2 iterations)"), ("distillation", "autopalette (2 iterations)"),
        ("evaluation", "random"), ("evaluation", "herding"), ("evaluation", "dc3"),
        ("evaluation", "dc3 + colour compensation"), ("evaluation", "dm"), ("evaluation", "autopalette"),
    ]
    for stage, method, _ in ran.timings:
        assert f"| {stage} | {method} |" in printed
    assert "| **total** (after the dataset exists) |" in printed
    assert "REDUCED protocol" in printed and "1 epochs × 1 models" in printed
    assert "| condensed set | images / class | accuracy % | random, same size % | gain | PNG bytes |" in printed
    for row in ran.rows:
        assert row.result["random"]["num_train"] == row.result["num_train"]  # the reference has the same size
        assert f"| {row.label}" in printed
    assert "dc3 [" in printed and "offline fallbacks" in printed  # no VAE / ImageNet weights in the test session
    assert "| whole train split (1 epochs) | 20 |" in printed  # asked for with --include-full
    assert set(dataset.list_runs()) == {"demo_random", "demo_herding", "demo_dc3", "demo_dc3_colour", "demo_dm",
                                        "demo_autopalette"}
