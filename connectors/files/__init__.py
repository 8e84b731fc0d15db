"""Bar files: reading OHLCV bars from CSV and Parquet with validation, and writing them."""
from connectors.files.frame import BarFrame
from connectors.files.reader import load_bars
from connectors.files.validate import BarDataError
from connectors.files.writer import write_bars

__all__ = ["BarDataError", "BarFrame", "load_bars", "write_bars"]
