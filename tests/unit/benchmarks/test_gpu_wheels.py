"""The device-call packing of benchmarks/gpu/gpu_wheels.py and its joining by join_parts.sh."""

from __future__ import annotations

import random
import shutil
import subprocess
import zipfile
from pathlib import Path

from benchmarks.gpu.gpu_wheels import pack, slim

ROOT = Path(__file__).resolve().parents[3]


def test_pack_fills_folders_under_the_limit_and_join_restores_every_file(tmp_path: Path):
    rng = random.Random(7)
    src = tmp_path / "src"
    src.mkdir()
    sizes = {"big.whl": 2500, "model.whl": 1700, "mid.whl": 900, "a.whl": 300, "b.whl": 40}
    for name, size in sizes.items():
        (src / name).write_bytes(rng.randbytes(size))
    bins = pack(sorted(src.iterdir()), tmp_path / "out", bin_bytes=1000)
    assert [b.name for b in bins] == [".gpu1", ".gpu2", ".gpu3", ".gpu4", ".gpu5", ".gpu6"]
    for b in bins:
        assert 0 < sum(p.stat().st_size for p in b.iterdir()) <= 1000
    assert sum(p.stat().st_size for b in bins for p in b.iterdir()) == sum(sizes.values())
    joined = tmp_path / "joined"
    joined.mkdir()
    for b in bins:
        for piece in b.iterdir():
            shutil.copy(piece, joined / piece.name)
    assert any(p.name.endswith(".part00") for p in joined.iterdir())
    subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu" / "join_parts.sh"), str(joined)], check=True
    )
    assert sorted(p.name for p in joined.iterdir()) == sorted(sizes)
    for name in sizes:
        assert (joined / name).read_bytes() == (src / name).read_bytes()


def test_slim_drops_members_and_their_record_lines(tmp_path: Path):
    wheel = tmp_path / "ray-1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("ray/__init__.py", "x = 1\n")
        z.writestr("ray/jars/ray_dist.jar", b"\0" * 1000)
        z.writestr(
            "ray-1.dist-info/RECORD",
            "ray/__init__.py,sha256=a,6\nray/jars/ray_dist.jar,sha256=b,1000\n",
        )
    slim(wheel, lambda n: n.startswith("ray/jars/"))
    with zipfile.ZipFile(wheel) as z:
        assert z.namelist() == ["ray/__init__.py", "ray-1.dist-info/RECORD"]
        assert "jars" not in z.read("ray-1.dist-info/RECORD").decode()
        assert z.read("ray/__init__.py") == b"x = 1\n"
