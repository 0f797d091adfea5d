"""Make the registry's CUDA build of torchvision import under a CPU-only torch.

torchvision 0.28.0 on the package registry is linked against CUDA libraries
(libc10_cuda, libtorch_cuda, libcudart, libnvjpeg) that the CPU build of torch
does not ship, so its extension fails to load and ``import torchvision`` dies
with "operator torchvision::nms does not exist". The CUDA code paths are never
reached on a CPU machine; only the dynamic linker needs the symbols. This
script builds small stub libraries that define exactly the missing symbols,
puts them in ``torchvision/_cpu_stubs`` and points the extensions' RPATH there,
so torchvision's real CPU kernels (nms, roi_align, image decoding) load.

Idempotent: does nothing when torchvision already imports.
Run with the interpreter of the environment to fix.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tempfile
from collections import defaultdict
from pathlib import Path

CUDA_LIBRARY = re.compile(r"^lib(c10_cuda|torch_cuda|cudart|nvjpeg)\b")
STUB_DIR_NAME = "_cpu_stubs"
# Called by the CUDA runtime's static registration code when a library loads.
REGISTER_FAT_BINARY = "__cudaRegisterFatBinary"


def torchvision_imports() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True)
    return probe.returncode == 0


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def needed_libraries(shared_object: Path) -> list[str]:
    dynamic = run("readelf", "-d", "-W", str(shared_object))
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)


def undefined_symbols(shared_object: Path) -> list[tuple[str, str, str | None]]:
    """(name, type, version library) of each undefined dynamic symbol."""
    symbols = []
    for line in run("readelf", "--dyn-syms", "-W", str(shared_object)).splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[6] != "UND" or fields[4] == "WEAK":
            continue
        name, _, version = fields[7].partition("@")
        version = re.sub(r"\s*\(\d+\)$", "", version) or None
        symbols.append((name, fields[3], version))
    return symbols


def defined_symbols(library_dir: Path) -> set[str]:
    names: set[str] = set()
    for library in library_dir.glob("*.so*"):
        output = subprocess.run(
            ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True
        ).stdout
        names.update(line.split()[-1].split("@")[0] for line in output.splitlines() if line.strip())
    return names


def stub_source(symbols: dict[str, str]) -> str:
    lines = ["/* Generated stub: these symbols are never called on a CPU-only machine. */"]
    for name, kind in sorted(symbols.items()):
        if kind == "OBJECT":
            lines.append(f"void *{name}[8] = {{0}};")
        elif name == REGISTER_FAT_BINARY:
            lines.append(f"static void *fat_binary_handle[4];\nvoid **{name}(void *b) {{ return fat_binary_handle; }}")
        else:
            lines.append(f"long {name}(void) {{ return 0; }}")
    return "\n".join(lines) + "\n"


def build_stub(soname: str, symbols: dict[str, str], versioned: bool, out_dir: Path, work: Path) -> None:
    source = work / f"{soname}.c"
    source.write_text(stub_source(symbols))
    command = ["gcc", "-shared", "-fPIC", "-o", str(out_dir / soname), f"-Wl,-soname,{soname}", str(source)]
    if versioned:
        script = work / f"{soname}.map"
        script.write_text(f"{soname} {{ global: *; }};\n")
        command.append(f"-Wl,--version-script={script}")
    run(*command)


def main() -> int:
    if torchvision_imports():
        print("torchvision imports; nothing to fix")
        return 0
    site = Path(sysconfig.get_paths()["purelib"])
    torch_lib = site / "torch" / "lib"
    package = site / "torchvision"
    extensions = sorted(package.glob("*.so"))
    provided = defined_symbols(torch_lib)

    stubs: dict[str, dict[str, str]] = defaultdict(dict)
    versioned: set[str] = set()
    for extension in extensions:
        missing = [lib for lib in needed_libraries(extension) if CUDA_LIBRARY.match(lib)]
        if not missing:
            continue
        unversioned = [lib for lib in missing if not re.search(r"\.so\.\d", lib)]
        plain = unversioned[0] if unversioned else missing[0]  # receives the unversioned symbols
        for lib in missing:
            stubs[lib]  # every missing library gets a file, even an empty one
        for name, kind, version in undefined_symbols(extension):
            if name in provided:
                continue
            if version is not None:
                if CUDA_LIBRARY.match(version):
                    stubs[version][name] = kind
                    versioned.add(version)
            else:
                stubs[plain][name] = kind

    stub_dir = package / STUB_DIR_NAME
    stub_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for soname, symbols in stubs.items():
            build_stub(soname, symbols, soname in versioned, stub_dir, Path(work))
    for extension in extensions:
        run("patchelf", "--set-rpath", f"$ORIGIN/{STUB_DIR_NAME}", str(extension))

    if not torchvision_imports():
        print("torchvision still fails to import after stubbing CUDA libraries", file=sys.stderr)
        return 1
    print(f"torchvision fixed: stubbed {', '.join(sorted(stubs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
