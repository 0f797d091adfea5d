"""The layers are the folders, and imports only run downwards.

algorithms (tensors) ← bridge (FiftyOne side) ← api (the SDK) ← apps (above the SDK, like a user).
Nothing below apps reaches the SDK through the package root's lazy names, which an import graph
would not show.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fiftyone_condense"
LAYERS = ("algorithms", "bridge", "api", "apps")  # bottom to top
EAGER_ROOT_NAMES = {"__version__"}  # defined in the root module itself, not a lazy hop to the SDK


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, names imported from it) for every import statement of the file."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((module, [alias.name for alias in node.names]))
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "fiftyone_condense" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in LAYERS else None


def modules_of(layer: str) -> list[Path]:
    folder, module = PACKAGE / layer, PACKAGE / f"{layer}.py"
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [module] if module.exists() else []


def violations() -> list[str]:
    found = []
    for layer in LAYERS:
        rank = LAYERS.index(layer)
        for path in modules_of(layer):
            for module, names in imports(path):
                targets = [module, *(f"{module}.{name}" for name in names)]  # `from pkg import submodule`
                upward = [t for t in targets if layer_of(t) is not None and LAYERS.index(layer_of(t)) > rank]
                found += [f"{module_name(path)} imports {t} (upwards)" for t in upward[-1:]]
                if layer == "algorithms" and module.split(".")[0] == "fiftyone":
                    found.append(f"{module_name(path)} imports FiftyOne ({module})")
                lazy = [n for n in names if n not in EAGER_ROOT_NAMES and n not in LAYERS]
                if layer != "apps" and module == "fiftyone_condense" and (lazy or not names):
                    found.append(f"{module_name(path)} reaches the package root's lazy names {lazy or module}")
    return found


def test_imports_run_only_downwards_and_the_tensor_package_never_imports_fiftyone():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    package = tmp_path / "fiftyone_condense"
    (package / "algorithms").mkdir(parents=True)
    (package / "algorithms" / "bad.py").write_text("import fiftyone as fo\nfrom ..bridge import views\n"
                                                   "from .. import api\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert violations() == ["fiftyone_condense.algorithms.bad imports FiftyOne (fiftyone)",
                            "fiftyone_condense.algorithms.bad imports fiftyone_condense.bridge.views (upwards)",
                            "fiftyone_condense.algorithms.bad imports fiftyone_condense.api (upwards)"]


def test_every_tensor_module_imports_with_fiftyone_unavailable():
    names = [module_name(path) for path in modules_of("algorithms")]
    script = ("import sys; sys.modules['fiftyone'] = None\n"  # any `import fiftyone` now fails
              f"import importlib\nfor name in {names!r}: importlib.import_module(name)\n"
              "assert not any(m == 'fiftyone' or m.startswith('fiftyone.') for m in sys.modules if sys.modules[m])\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=PACKAGE.parent)
