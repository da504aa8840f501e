"""Small vectorised helpers: padded string ids, hex ids, time conversion, label lookup."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

US = 1_000_000  # microseconds per second
DAY = 86_400  # seconds per day
TS_TYPE = pa.timestamp("us", tz="UTC")


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal ``numbers`` (e.g. ``c-000042``) as a string array."""
    digits = pc.utf8_lpad(
        pc.cast(pa.array(numbers.astype(np.int64)), pa.string()), width=width, padding="0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def hex_ids(prefix: str, numbers: np.ndarray, digits: int) -> pa.Array:
    """``prefix`` + ``digits`` lower-case hex digits of ``numbers`` (unsigned)."""
    values = numbers.astype(np.uint64)
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = ((values[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.uint8)
    table = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.ascontiguousarray(table[nibbles])
    as_str = chars.view(f"S{digits}").ravel().astype(str)
    return pc.binary_join_element_wise(prefix, pa.array(as_str, pa.string()), "")


def label_array(labels: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    """Map integer ``codes`` to string labels; negative codes become null."""
    dictionary = pa.array(list(labels), pa.string())
    mask = codes < 0
    idx = pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask)
    return dictionary.take(idx)


def take_strings(values: pa.Array, index: np.ndarray) -> pa.Array:
    """``values[index]`` with negative indices giving null."""
    mask = index < 0
    idx = pa.array(np.where(mask, 0, index).astype(np.int64), mask=mask)
    return values.take(idx)


def timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * US, TS_TYPE)


def masked_ints(values: np.ndarray, present: np.ndarray, dtype: pa.DataType) -> pa.Array:
    return pa.array(values, dtype, mask=~present)


def masked_floats(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.float64), pa.float64(), mask=np.isnan(values))


def epoch_seconds(year: int, month: int, day: int) -> int:
    return int(np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "s").astype(np.int64))
