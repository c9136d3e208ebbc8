"""Where a netCDF classic file (CDF-1, CDF-2, CDF-5) must end.

netCDF-C reads past the end of a truncated classic file as zeros, without an
error, so a cut file would load silently wrong. The header records where each
variable's data begins; with the dimension lengths and types that gives the
least size a complete file has. All header integers are big-endian; counts
are 4 bytes (8 in CDF-5), data offsets 4 bytes in CDF-1 and 8 otherwise, and
names and attribute values are padded to 4 bytes.
"""

from __future__ import annotations

import math
import os

__all__ = ["expected_size"]

_ABSENT, _DIMENSION, _VARIABLE, _ATTRIBUTE = 0, 10, 11, 12
# nc_type -> bytes per value: byte, char, short, int, float, double, ubyte,
# ushort, uint, int64, uint64.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


class _NeedMore(Exception):
    """The header runs past the bytes read so far."""


def _pad(n: int) -> int:
    return (n + 3) & ~3


class _Header:
    """Sequential reader of a classic header held in ``buf``."""

    def __init__(self, buf: bytes):
        version = buf[3]
        self.buf, self.pos = buf, 4
        self.count = 8 if version == 5 else 4
        self.offset = 4 if version == 1 else 8

    def read_int(self, size: int) -> int:
        end = self.pos + size
        if end > len(self.buf):
            raise _NeedMore
        value = int.from_bytes(self.buf[self.pos:end], "big")
        self.pos = end
        return value

    def skip(self, n: int) -> None:
        if self.pos + _pad(n) > len(self.buf):
            raise _NeedMore
        self.pos += _pad(n)

    def name(self) -> None:
        self.skip(self.read_int(self.count))

    def type_size(self) -> int:
        code = self.read_int(4)
        if code not in _TYPE_SIZES:
            raise ValueError(f"unknown nc_type {code}")
        return _TYPE_SIZES[code]

    def list_length(self, tag: int) -> int:
        found, n = self.read_int(4), self.read_int(self.count)
        if found == _ABSENT and n == 0:
            return 0
        if found != tag:
            raise ValueError(f"expected header tag {tag}, found {found}")
        return n

    def attributes(self) -> None:
        for _ in range(self.list_length(_ATTRIBUTE)):
            self.name()
            size = self.type_size()
            self.skip(size * self.read_int(self.count))

    def parse(self) -> tuple[int, list[tuple[int, int, bool]]]:
        """``numrecs`` and ``(begin, bytes per record or in all, is_record)`` per variable."""
        numrecs = self.read_int(self.count)
        dims = []
        for _ in range(self.list_length(_DIMENSION)):
            self.name()
            dims.append(self.read_int(self.count))
        self.attributes()
        variables = []
        for _ in range(self.list_length(_VARIABLE)):
            self.name()
            shape = [dims[self.read_int(self.count)] for _ in range(self.read_int(self.count))]
            self.attributes()
            size = self.type_size()
            self.read_int(self.count)  # vsize: capped for huge variables, recomputed below
            begin = self.read_int(self.offset)
            record = bool(shape) and shape[0] == 0
            variables.append((begin, size * math.prod(shape[1:] if record else shape), record))
        return numrecs, variables


def _parse(path: str | os.PathLike) -> tuple[int, int, list[tuple[int, int, bool]]]:
    file_size, n = os.path.getsize(path), 1 << 16
    with open(path, "rb") as fh:
        while True:
            fh.seek(0)
            header = _Header(fh.read(n))
            try:
                numrecs, variables = header.parse()
                return header.pos, numrecs, variables
            except _NeedMore:
                if n >= file_size:
                    raise ValueError("the header is cut short") from None
                n *= 4
            except IndexError:
                raise ValueError("a variable refers to an unknown dimension") from None


def expected_size(path: str | os.PathLike) -> int:
    """Least size in bytes of the complete netCDF classic file at ``path``.

    Raises
    ------
    ValueError
        The header itself is cut short or malformed.
    """
    header_end, numrecs, variables = _parse(path)
    records = [n for _, n, record in variables if record]
    record_size = records[0] if len(records) == 1 else sum(_pad(n) for n in records)
    streaming = numrecs in ((1 << 32) - 1, (1 << 64) - 1)
    end = header_end
    for begin, n, record in variables:
        if not record and n:
            end = max(end, begin + n)
        elif record and numrecs and not streaming and n:
            end = max(end, begin + (numrecs - 1) * record_size + n)
    return end
