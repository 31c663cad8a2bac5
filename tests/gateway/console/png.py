"""A small PNG reader for the console's screenshot test (PNG, ISO/IEC 15948): 8-bit
greyscale, RGB or RGBA, not interlaced, which is what chromium's screenshots are."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 6: 4}


@dataclass(frozen=True, slots=True)
class Image:
    """Pixels as rows of luminance values (0-255)."""

    width: int
    height: int
    luminance: tuple[bytes, ...]


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(data: bytes) -> Image:
    """Decode ``data``; ``ValueError`` for anything else than the kinds above."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG (signature)")
    offset = len(SIGNATURE)
    header: tuple[int, ...] | None = None
    compressed = bytearray()
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunk = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        if zlib.crc32(kind + chunk) != crc:
            raise ValueError(f"PNG chunk {kind!r} fails its CRC")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            compressed += chunk
        elif kind == b"IEND":
            break
        offset += 12 + length
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"PNG kind not read here: depth {depth}, colour {colour}")
    channels = _CHANNELS[colour]
    stride = width * channels
    raw = zlib.decompress(bytes(compressed))
    previous = bytearray(stride)
    rows: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        row_filter = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if row_filter == 1:
                line[x] = (line[x] + left) & 0xFF
            elif row_filter == 2:
                line[x] = (line[x] + up) & 0xFF
            elif row_filter == 3:
                line[x] = (line[x] + ((left + up) >> 1)) & 0xFF
            elif row_filter == 4:
                line[x] = (line[x] + _paeth(left, up, corner)) & 0xFF
            elif row_filter != 0:
                raise ValueError(f"PNG row {y} has filter {row_filter}")
        previous = line
        if channels == 1:
            rows.append(bytes(line))
        else:
            rows.append(
                bytes(
                    (299 * line[i] + 587 * line[i + 1] + 114 * line[i + 2]) // 1000
                    for i in range(0, stride, channels)
                )
            )
    return Image(width, height, tuple(rows))


def thumbnail(image: Image, width: int, height: int) -> list[int]:
    """``image`` averaged down to ``width`` x ``height`` luminance cells, row by row."""
    cells: list[int] = []
    for cy in range(height):
        top, bottom = cy * image.height // height, (cy + 1) * image.height // height
        for cx in range(width):
            left, right = cx * image.width // width, (cx + 1) * image.width // width
            total = sum(sum(image.luminance[y][left:right]) for y in range(top, bottom))
            cells.append(total // max(1, (bottom - top) * (right - left)))
    return cells
