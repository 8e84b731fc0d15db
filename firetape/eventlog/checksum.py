"""The CRC-32 that frames every record of the log (zlib's polynomial, as zlib.crc32).

zlib-ng computes exactly the same CRC-32 as zlib, so the file format is the same either
way, but with carry-less multiplication instead of zlib's tables: about a quarter of the
time on a record of a few hundred bytes, where zlib's CRC was the largest single native
cost of appending (README, Performance). Where zlib-ng cannot be installed the standard
library computes the same values, only slower.
"""
from __future__ import annotations

try:
    from zlib_ng.zlib_ng import crc32
except ImportError:   # pragma: no cover - zlib-ng is a dependency; this is the fallback
    from zlib import crc32

__all__ = ["crc32"]
