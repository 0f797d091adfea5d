"""Installable the way FiftyOne users install plugins, checked without the network or a database.

- The metadata agree: pyproject.toml states ranges that the exact pins of constraints.txt satisfy,
  requirements.txt (what `fiftyone plugins requirements --install` installs) repeats them, and
  fiftyone.yml asks for the same FiftyOne range.
- Both install paths work in a fresh virtual environment that sees this environment's packages
  (FiftyOne, torch, ... as pinned) through a .pth file but not this checkout:
  1. `fiftyone plugins download` + `fiftyone plugins requirements --install`: the download of an
     archive of this checkout served on 127.0.0.1 (the package folder inside, not pip-installed);
     the second command pip-installs each line of requirements.txt (all already met, no index),
     and the plugin registers every operator and panel of fiftyone.yml, importing
     fiftyone_condense from the plugin folder, even without the [diffusion] extra.
  2. `pip install "fiftyone-condense[diffusion]"`: the wheel built from this checkout installs with
     its dependencies resolved from what is installed (no index), and the plugin then uses the
     installed package.
- Without diffusers, asking for the diffusion backend or the VAE says which extra to install.

The subprocesses point FiftyOne at an unreachable database, so none of this may touch one.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "@condense/fiftyone-condense"
# The files of the repository that the plugin needs (`fiftyone plugins download` copies them all).
PLUGIN_FILES = ("fiftyone.yml", "__init__.py", "requirements.txt", "README.md", "operators", "panels", "fiftyone_condense")
DIFFUSION_MODULES = ("diffusers", "transformers", "accelerate")

# Run inside the fresh environment: register the plugin as FiftyOne does and report what it got.
REGISTER = """
import json, sys
if sys.argv[1] == "without-diffusion":
    for name in {modules!r}:
        sys.modules[name] = None  # `import name` now raises ImportError, as when the extra is missing
import fiftyone.operators as foo
import fiftyone.plugins as fop
from fiftyone.plugins.context import PluginContext

context = PluginContext(fop.get_plugin({plugin!r}))
context.register_all()
import fiftyone_condense as fc

print(json.dumps({{
    "errors": context.errors,
    "registered": sorted(instance.name for instance in context.instances),
    "listed": sorted(op.uri for op in foo.list_operators(enabled=True, type=None) if op.plugin_name == {plugin!r}),
    "package": fc.__file__,
    "methods": sorted(fc.SELECTION_METHODS),
}}))
""".format(modules=DIFFUSION_MODULES, plugin=PLUGIN)

CLI = "import sys; from fiftyone.core.cli import main; sys.argv[0] = 'fiftyone'; sys.exit(main())"


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_ranges_pins_and_manifests_agree():
    project = _pyproject()["project"]
    dependencies = [Requirement(line) for line in project["dependencies"]]
    extras = {name: [Requirement(line) for line in lines] for name, lines in project["optional-dependencies"].items()}
    assert {"diffusion", "test"} <= set(extras)
    assert {r.name for r in extras["diffusion"]} == set(DIFFUSION_MODULES)
    assert not {r.name for r in dependencies} & set(DIFFUSION_MODULES), "the diffusion stack is the [diffusion] extra"
    assert all(r.specifier and not any(s.operator == "==" for s in r.specifier) for r in dependencies), "ranges, not pins"

    pins = {Requirement(line).name: Requirement(line) for line in _requirement_lines(ROOT / "constraints.txt")}
    for requirement in dependencies + extras["diffusion"] + extras["test"]:
        pin = pins.get(requirement.name)
        if pin is not None:
            version = next(iter(pin.specifier)).version
            assert requirement.specifier.contains(Version(version)), f"{requirement} excludes the pin {pin}"
    assert {"torch", "torchvision", "fiftyone", "diffusers", "transformers", "accelerate"} <= set(pins)

    fiftyone = next(r for r in dependencies if r.name == "fiftyone")
    manifest = yaml.safe_load((ROOT / "fiftyone.yml").read_text())
    assert Requirement("fiftyone" + manifest["fiftyone"]["version"]).specifier == fiftyone.specifier

    # requirements.txt: the package's dependencies with the diffusion extra, FiftyOne left to fiftyone.yml.
    wanted = {str(r) for r in dependencies + extras["diffusion"] if r.name != "fiftyone"}
    assert {str(Requirement(line)) for line in _requirement_lines(ROOT / "requirements.txt")} == wanted

    install = (ROOT / "tools" / "install.sh").read_text()
    assert '-e ".[diffusion,test]"' in install and "-c constraints.txt" in install


@pytest.mark.parametrize("module", DIFFUSION_MODULES[:1])
def test_missing_diffusion_extra_says_what_to_install(monkeypatch, module):
    import torch

    import fiftyone_condense as fc
    from fiftyone_condense.algorithms.color import diffusion
    from fiftyone_condense.algorithms.teachers import load_vae

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(fc.CondensationError, match=r'pip install "fiftyone-condense\[diffusion\]"'):
        diffusion.load_pipeline("unused", torch.device("cpu"))
    with pytest.raises(fc.CondensationError, match=r'pip install "fiftyone-condense\[diffusion\]"'):
        load_vae("unused", torch.device("cpu"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("install")


@pytest.fixture
def fresh_python(tmp_path) -> Path:
    """A new virtual environment (one per test) that sees this environment's site-packages, appended
    through a .pth file (so this checkout's editable install, itself a .pth hook, is not active there)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    visible = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(purelib) / "project_site_packages.pth").write_text("".join(f"{path}\n" for path in visible))
    return python


@pytest.fixture(scope="module")
def env(workspace) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FIFTYONE_", "PYTHON", "PIP_"))}
    env.update(
        FIFTYONE_PLUGINS_DIR=str(workspace / "plugins"),
        FIFTYONE_CONFIG_PATH=str(workspace / "no-config.json"),
        FIFTYONE_DATABASE_URI="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1000",  # nothing here may need it
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
        HF_HUB_OFFLINE="1",
        PIP_NO_INDEX="1",  # no network: every requirement must already be met
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    return env


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def downloaded_plugin(workspace, env) -> Path:
    """The plugin as `fiftyone plugins download <archive URL>` installs it, from an archive of this
    checkout laid out like GitHub's (one top folder), served on 127.0.0.1."""
    served = workspace / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "fiftyone-condense-main.zip", "w") as archive:
        for name in PLUGIN_FILES:
            source = ROOT / name
            files = [source] if source.is_file() else sorted(
                path for path in source.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
            for path in files:
                archive.write(path, f"fiftyone-condense-main/{path.relative_to(ROOT)}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/fiftyone-condense-main.zip"
        _run(Path(sys.executable), ["-c", CLI, "plugins", "download", url], env, workspace)
    finally:
        server.shutdown()
        server.server_close()
    (manifest,) = Path(env["FIFTYONE_PLUGINS_DIR"]).rglob("fiftyone.yml")
    assert (manifest.parent / "fiftyone_condense" / "__init__.py").is_file()
    return manifest.parent


def _run(python: Path, args: list[str], env: dict, cwd: Path) -> str:
    result = subprocess.run([str(python), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    command = " ".join(arg if len(arg) < 100 else arg.strip().splitlines()[0] + " ..." for arg in args)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _expected_uris() -> list[str]:
    manifest = yaml.safe_load((ROOT / "fiftyone.yml").read_text())
    return sorted(f"{PLUGIN}/{name}" for name in manifest["operators"] + manifest["panels"])


def _register(python: Path, env: dict, cwd: Path, mode: str) -> dict:
    report = json.loads(_run(python, ["-c", REGISTER, mode], env, cwd).strip().splitlines()[-1])
    assert report["errors"] == []
    assert sorted(f"{PLUGIN}/{name}" for name in report["registered"]) == _expected_uris()
    assert report["listed"] == _expected_uris()
    assert "graph_cut" in report["methods"]
    return report


def test_plugin_download_then_requirements(fresh_python, downloaded_plugin, env, workspace):
    cwd = workspace
    check = "import importlib.util, sys; sys.exit(importlib.util.find_spec('fiftyone_condense') is not None)"
    _run(fresh_python, ["-c", check], env, cwd)  # the package is not installed in the fresh environment

    # FiftyOne runs `pip install "<line>"` for each line of the plugin's requirements.txt; all are met here.
    installed = _run(fresh_python, ["-c", CLI, "plugins", "requirements", PLUGIN, "--install"], env, cwd)
    for line in _requirement_lines(ROOT / "requirements.txt"):
        assert f"Requirement already satisfied: {line} " in installed

    # The operators import fiftyone_condense from the plugin folder, and need no [diffusion] extra to.
    report = _register(fresh_python, env, cwd, "without-diffusion")
    assert Path(report["package"]).resolve().is_relative_to(downloaded_plugin.resolve())


def test_wheel_installs_into_an_existing_fiftyone_environment(fresh_python, downloaded_plugin, env, workspace):
    source = workspace / "source"  # a clean copy: an in-tree build would write build/ into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "fiftyone_condense", source / "fiftyone_condense", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = workspace / "wheels"
    _run(Path(sys.executable), ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
         env, workspace)
    (wheel,) = wheels.glob("fiftyone_condense-*.whl")

    # Dependencies resolve from what is installed (PIP_NO_INDEX): the ranges accept the pinned versions.
    _run(fresh_python, ["-m", "pip", "install", f"{wheel}[diffusion]"], env, workspace)
    site = _run(fresh_python, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, workspace).strip()
    report = _register(fresh_python, env, workspace, "with-diffusion")
    assert Path(report["package"]).resolve().is_relative_to(Path(site).resolve()), "the installed package comes first"
