"""Image dimensions from the file header, before anything is decoded.

A decoder allocates what the header asks for: a 400 KB PNG can declare 20000×20000 pixels (1.2 GB decoded).
:func:`image_size` reads the width and height that JPEG, PNG, BMP, TIFF, WebP and PPM/PGM files declare, and
:func:`check_complete` tells a truncated JPEG or PNG from a whole one, so that such files are refused without
handing them to the decoder (which would allocate, or print a library warning, or both).
"""

from __future__ import annotations

import struct


class HeaderError(ValueError):
    """The bytes are not a complete image of a supported format; the message says why."""


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> tuple[int, int, int]:
    """(width, height, offset of the first scan) of a JPEG; walks the marker segments."""
    pos, n, size = 2, len(data), None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise HeaderError("corrupt JPEG (bad marker)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2:
            raise HeaderError("corrupt JPEG (bad segment length)")
        if marker in _JPEG_SOF and size is None:
            if pos + 9 > n:
                break
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            size = (w, h)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise HeaderError("corrupt JPEG (scan before frame header)")
            return size[0], size[1], pos
        pos += 2 + length
    raise HeaderError("truncated JPEG (no image data)")


def _tiff(data: bytes) -> tuple[int, int]:
    end = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        raise HeaderError("truncated TIFF")
    (ifd,) = struct.unpack(end + "I", data[4:8])
    if ifd + 2 > len(data):
        raise HeaderError("truncated TIFF (no image directory)")
    (count,) = struct.unpack(end + "H", data[ifd:ifd + 2])
    dims: dict[int, int] = {}
    for k in range(count):
        e = ifd + 2 + 12 * k
        if e + 12 > len(data):
            raise HeaderError("truncated TIFF (image directory)")
        tag, typ = struct.unpack(end + "HH", data[e:e + 4])
        if tag in (256, 257):
            value = struct.unpack(end + ("H" if typ == 3 else "I"), data[e + 8:e + (10 if typ == 3 else 12)])[0]
            dims[tag] = value
    if 256 not in dims or 257 not in dims:
        raise HeaderError("TIFF without image width/height")
    return dims[256], dims[257]


def _pnm(data: bytes) -> tuple[int, int]:
    tokens: list[bytes] = []
    pos = 2
    while len(tokens) < 2 and pos < len(data):
        c = data[pos:pos + 1]
        if c == b"#":
            nl = data.find(b"\n", pos)
            pos = len(data) if nl < 0 else nl + 1
        elif c.isspace():
            pos += 1
        else:
            start = pos
            while pos < len(data) and not data[pos:pos + 1].isspace() and data[pos:pos + 1] != b"#":
                pos += 1
            tokens.append(data[start:pos])
    try:
        return int(tokens[0]), int(tokens[1])
    except (IndexError, ValueError):
        raise HeaderError("corrupt PPM/PGM header") from None


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise HeaderError("corrupt WebP header")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) that the image in ``data`` declares; :class:`HeaderError` when it is not a supported
    image (JPEG, PNG, BMP, TIFF, WebP, PPM/PGM) or its header is cut short."""
    if not data:
        raise HeaderError("empty file")
    if data[:3] == b"\xff\xd8\xff":
        w, h, _ = _jpeg(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise HeaderError("truncated PNG (no header chunk)")
        w, h = struct.unpack(">II", data[16:24])
    elif data[:2] == b"BM":
        if len(data) < 26:
            raise HeaderError("truncated BMP header")
        (hsize,) = struct.unpack("<I", data[14:18])
        if hsize == 12:
            w, h = struct.unpack("<HH", data[18:22])
        else:
            w, h = struct.unpack("<ii", data[18:26])
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        w, h = _tiff(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        w, h = _webp(data)
    elif data[:1] == b"P" and data[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6"):
        w, h = _pnm(data)
    else:
        raise HeaderError("not an image (expected JPEG, PNG, BMP, TIFF, WebP or PPM/PGM)")
    w, h = abs(int(w)), abs(int(h))
    if w == 0 or h == 0:
        raise HeaderError(f"image of {w}x{h} pixels")
    return w, h


def check_complete(data: bytes) -> None:
    """Raise :class:`HeaderError` when a JPEG or PNG in ``data`` is cut short (no end marker after its image
    data); other formats are left to the decoder."""
    if data[:3] == b"\xff\xd8\xff":
        _, _, scan = _jpeg(data)
        if data.rfind(b"\xff\xd9", scan) < 0:
            raise HeaderError("truncated JPEG (no end-of-image marker)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if data.rfind(b"IEND", max(0, len(data) - 4096)) < 0:
            raise HeaderError("truncated PNG (no IEND chunk)")
