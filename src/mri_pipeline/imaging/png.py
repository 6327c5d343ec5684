"""A minimal PNG writer for 8-bit greyscale images (PNG specification, ISO/IEC 15948)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_gray8(image: NDArray[np.uint8]) -> bytes:
    """A PNG file of ``image`` (rows, columns): colour type 0, bit depth 8, no interlace."""
    if image.ndim != 2 or image.dtype != np.uint8 or 0 in image.shape:
        raise ValueError(f"need a non-empty 2-D uint8 image, not {image.dtype} {image.shape}")
    height, width = image.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # Filter type 0 (None) in front of every scanline.
    scanlines = np.zeros((height, width + 1), dtype=np.uint8)
    scanlines[:, 1:] = image
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )
