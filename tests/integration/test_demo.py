"""`make demo` end to end at a tiny size: every stage runs, and the tables are printed."""

import fiftyone as fo

from fiftyone_condense import demo


def test_the_demo_runs_every_method_and_prints_its_tables(capsys):
    demo.main(["--train-per-class", "20", "--test-per-class", "10", "--ipc", "1", "--epochs", "1", "--num-models", "1",
               "--iterations", "2", "--batch-real", "4", "--teacher-epochs", "1"])
    printed = capsys.readouterr().out

    for stage in ("| selection | random |", "| selection | herding |", "| selection | dc3 |",
                  "| compensation | dc3 → classical colour compensation |", "| distillation | dm (2 iterations) |",
                  "| distillation | autopalette (2 iterations) |", "| evaluation | autopalette |"):
        assert stage in printed
    assert "REDUCED protocol" in printed and "| **total** (after the dataset exists) |" in printed
    assert "| autopalette | 40 |" in printed  # the paper's budget: 4 palette images per class at IPC 1
    dataset = fo.load_dataset("fashion-mnist-demo-20-10")
    assert set(dataset.list_runs()) == {"demo_random", "demo_herding", "demo_dc3", "demo_dc3_colour", "demo_dm",
                                        "demo_autopalette"}
    dataset.delete()
