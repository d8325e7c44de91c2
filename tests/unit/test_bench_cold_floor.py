"""bench_proxy's "checks alone" row times zlib and hashlib on each entry's stored bytes: those
bytes must be exactly the entry's data section, or the row times the wrong work."""

from __future__ import annotations

import sys
import zipfile
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_proxy


@pytest.mark.parametrize(("kib", "files"), [(64, 0), (0, 40)])
def test_stored_entries_inflate_to_each_member(tmp_path: Path, kib: int, files: int) -> None:
    # (64, 0): random 4 KiB files, deflated, sizes in the local headers; (0, 40): Go-like source
    # written as Go's writer does, with data descriptors after each entry's data.
    path = tmp_path / "m.zip"
    bench_proxy.make_module_zip(path, "v1.0.0", kib, files)
    data = path.read_bytes()
    entries = bench_proxy.stored_entries(data)
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        assert len(entries) == len(members) > 2
        for (method, raw), info in zip(entries, members, strict=True):
            assert method == info.compress_type == zipfile.ZIP_DEFLATED
            inflater = zlib.decompressobj(-15)
            content = inflater.decompress(raw)
            assert inflater.eof and not inflater.unused_data  # the whole stream, nothing after
            assert content == zf.read(info)
            assert zlib.crc32(content) == info.CRC

