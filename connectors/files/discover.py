"""Which files a list of paths means, and the symbol a one-symbol file is named for."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from connectors.files.validate import BarDataError

# Longest first, so "x.csv.gz" is not mistaken for a ".gz" file of unknown kind.
BAR_SUFFIXES = (".csv.gz", ".csv", ".parquet", ".pq")


def bar_suffix(path: Path) -> str | None:
    """The bar-file suffix of `path` (case-insensitive), or None if it is not a bar file."""
    name = path.name.lower()
    return next((s for s in BAR_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def is_csv(path: Path) -> bool:
    """Whether `path` is read as CSV (plain or gzip), as opposed to Parquet."""
    return bar_suffix(path) in (".csv", ".csv.gz")


def symbol_from_filename(path: Path) -> str:
    """The symbol of a one-symbol file: its name without the suffix, upper-cased
    (aapl.csv -> AAPL, brk.b.parquet -> BRK.B)."""
    suffix = bar_suffix(path) or ""
    return path.name[: len(path.name) - len(suffix)].upper()


def bar_files(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """Expand `paths` into bar files, in the given order.

    A directory stands for its bar files (not recursive), sorted by name. A file named
    twice is read once. Raises BarDataError for a missing path, a file of another type,
    or a directory with no bar files.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: dict[Path, Path] = {}
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted((p for p in given.iterdir() if p.is_file() and bar_suffix(p)),
                           key=lambda p: p.name)
            if not found:
                raise BarDataError(str(given), f"directory holds no bar files ({', '.join(BAR_SUFFIXES)})")
        elif given.is_file():
            if not bar_suffix(given):
                raise BarDataError(str(given), f"unsupported file type; expected one of {', '.join(BAR_SUFFIXES)}")
            found = [given]
        else:
            raise BarDataError(str(given), "no such file or directory")
        for path in found:
            files.setdefault(path.resolve(), path)
    return list(files.values())
