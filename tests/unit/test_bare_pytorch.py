"""The algorithm layer on a machine with PyTorch alone (the lent GPU machine has no FiftyOne,
diffusers or submodlib): the tensor modules import and run, and the GPU suite's smoke size runs,
in processes where importing any of those fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = '''
import sys

class _Absent:
    """Import of FiftyOne, diffusers or submodlib fails, as on a bare PyTorch machine."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fiftyone", "fiftyone_brain", "eta", "diffusers", "submodlib"):
            raise ImportError(f"{name} is not installed here (test_bare_pytorch)")

sys.meta_path.insert(0, _Absent())
'''


@pytest.fixture
def bare_env(tmp_path):
    """An environment whose Python processes (and their children) cannot import FiftyOne & co."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


def run(code_or_args, env, timeout=600):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    done = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_tensor_modules_distil_and_evaluate_without_fiftyone(bare_env):
    out = run('''
import sys, torch
import fiftyone_condense as fc
from fiftyone_condense.algorithms.distillation import distill, settings_for
from fiftyone_condense.algorithms.protocols import HardProtocol, evaluate_images
from fiftyone_condense.algorithms.idx import fashion_mnist_tensors
try:
    import fiftyone
except ImportError:
    pass
else:
    raise SystemExit("the blocker did not work")
real, labels = torch.rand(60, 1, 28, 28), torch.arange(3).repeat_interleave(20)
result = distill(real, labels, real[::10], labels[::10], 3, settings_for("ddm", iterations=2, batch_real=8),
                 torch.device("cpu"))
score = evaluate_images(result.images, labels[::10], real, labels, 3, HardProtocol(epochs=1, num_models=1), torch.device("cpu"))
print(len(result.history), 0 <= score.mean <= 1, sorted(m for m in sys.modules if m.startswith(("fiftyone.", "diffusers"))))
''', bare_env)
    assert out.split() == ["2", "True", "[]"]


def test_the_gpu_suite_smoke_size_runs_without_fiftyone(bare_env, tmp_path):
    """``benchmarks/gpu_suite.py --smoke``: the step-speed table (the reference loop included), then
    distillation and hard-protocol evaluation jobs in child processes, tables and curves written."""
    out = run([str(ROOT / "benchmarks" / "gpu_suite.py"), "--smoke", "--budget", "3000",  # a loaded machine is slow
               "--out", str(tmp_path / "out")], bare_env)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    loops = [row["loop"] for row in results["speed"]]
    assert loops[0].startswith("reference main_DM.py") and "ours DM, batched (default)" in loops
    assert all(row["it_per_s"] > 0 for row in results["speed"])
    jobs = {(job["method"], job["ipc"]): job for job in results["protocol"]}
    assert set(jobs) == {(m, ipc) for m in ("dm", "ddm", "autopalette", "random") for ipc in (1, 2)}
    for (method, ipc), job in jobs.items():
        assert job["status"] == "done" and len(job["accuracies"]) == 2 and 0 <= job["mean"] <= 1
        if method != "random":
            assert job["iterations"] == 3 and len(job["loss_history"]) == 3
    assert jobs[("autopalette", 2)]["images_per_class"] == 8  # its storage budget: IPC × 4 at 64 colours
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| reference main_DM.py (DM) |" in summary and "| 2 | autopalette | 8 | 3 |" in summary
    assert "| IPC | method |" in out  # the short table printed last
    assert not (tmp_path / "out" / "jobs").exists()
