"""Run a condensation on several processes or GPUs, started by ``torchrun``.

    torchrun --nproc_per_node 4 -m fiftyone_condense.apps.launch distill --dataset fashion-mnist \\
        --tags train --method dm --ipc 10 --run-key dm10 --param iterations=20000

The main process (rank 0) runs the SDK function as usual — it alone reads the dataset and writes the
run, all-or-nothing — and hands the tensor work to the group: distillation splits the classes,
embeddings the images, evaluation the models (:class:`fiftyone_condense.algorithms.distributed.Team`). The
other processes never import FiftyOne; they read media files only. A process that dies fails the
run (``torchrun`` stops the others) and nothing is written. Without ``torchrun`` it runs in one
process, like the SDK call it wraps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Optional

from ..algorithms.distributed import Team, init_from_env, leading

COMMANDS = ("distill", "select", "evaluate", "embed")  # embed: compute_embeddings
NPROC_VARIABLE = "FIFTYONE_CONDENSE_NPROC"  # processes for runs the App schedules (1: in the executor itself)


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON when it parses (numbers, booleans, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fiftyone_condense.apps.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS), help="embed: compute_embeddings")
    parser.add_argument("--dataset", required=True, help="the FiftyOne dataset's name")
    parser.add_argument("--tags", nargs="*", default=None, help="condense the samples with these tags (e.g. train)")
    parser.add_argument("--view", help="a view's stages as JSON (what DatasetView._serialize() gives); else --tags")
    parser.add_argument("--method", help="selection or distillation method")
    parser.add_argument("--ipc", type=int, help="images per class")
    parser.add_argument("--run-key", help="the run's key (evaluate: the run to evaluate)")
    parser.add_argument("--init", help="distillation's initialisation (a selection method or run key, or noise)")
    parser.add_argument("--label-field", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="single process only; under torchrun each rank takes its GPU")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any other keyword of the SDK function (repeatable), e.g. iterations=20000")
    return parser.parse_args(argv)


def sdk_call(args: argparse.Namespace):
    """The SDK function the command names, called on the main process."""
    import fiftyone as fo

    from .. import api

    dataset = fo.load_dataset(args.dataset)
    if args.view:
        view = fo.DatasetView._build(dataset, json.loads(args.view))
    else:
        view = dataset.match_tags(args.tags) if args.tags else dataset.view()
    keywords = {key: value for key, value in (
        ("method", args.method), ("ipc", args.ipc), ("run_key", args.run_key), ("init", args.init),
        ("label_field", args.label_field)) if value is not None}
    keywords.update(seed=args.seed, device=args.device)
    for item in args.param:
        name, _, value = item.partition("=")
        keywords[name.strip()] = parse_value(value)
    if args.command == "evaluate":
        keywords.pop("seed")
        return api.evaluate(dataset=dataset, **keywords)
    keywords.setdefault("overwrite", args.overwrite)
    writers = {"distill": api.distill, "select": api.select, "embed": api.compute_embeddings}
    return writers[args.command](view, **keywords)


def default_processes() -> int:
    """``$FIFTYONE_CONDENSE_NPROC``, else 1."""
    return max(1, int(os.environ.get(NPROC_VARIABLE) or 1))


def launch_command(view, command: str, processes: int, **keywords) -> list[str]:
    """The one-host ``torchrun`` command running ``command`` on ``view`` (any view: its stages travel
    as JSON) with the SDK keywords given."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "fiftyone_condense.apps.launch", command, "--dataset", view._dataset.name,
            "--view", json.dumps(view._serialize())]
    for name, value in keywords.items():
        if value is not None:
            args += ["--param", f"{name}={json.dumps(value)}"]
    return args


def run_launched(args: list[str]) -> dict:
    """Run a launch command to its end; its summary, or a :class:`CondensationError` with its output."""
    from ..algorithms.errors import CondensationError

    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise CondensationError(f"The {args[args.index('--nproc_per_node') + 1]}-process run failed "
                                f"(exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    team = Team(init_from_env())
    if not team.parallel.is_main:
        team.serve()
        return 0
    with leading(team):
        result = sdk_call(args)
    summary = getattr(result, "results", None) or (result if isinstance(result, dict) else {})
    print(json.dumps({"command": args.command, "processes": team.parallel.world_size,
                      "run_key": getattr(result, "key", args.run_key),  # embed: None
                      **{k: summary[k] for k in ("num_samples", "mean", "std") if k in summary}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
