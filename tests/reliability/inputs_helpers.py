"""Bad inputs made on the fly for the input-trust tests: broken images, pixel bombs, link loops, a snapshot of a
folder's files to prove that a command left its inputs alone."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo" / "images"
FAST = ["--model", "tiny-cnn", "--size", "64", "--device", "cpu"]


def rkit(*args, cwd=None, timeout: float = 240) -> subprocess.CompletedProcess:
    """The real ``rkit`` command (this checkout first on the path), one thread, output captured."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "retrievalkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``folder`` (links not followed; a link -> its target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def assert_clean_refusal(p: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Exit ``code``, exactly one ``error:`` line on stderr mentioning every word, no traceback."""
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = error_lines(p.stderr)
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def demo_images(folder: Path, n: int = 4, sub: str = "") -> list[str]:
    """Copy ``n`` bundled demo photos into ``folder/sub``; their names relative to ``folder``."""
    src = sorted(DEMO.glob("*/*.jpg"))[:n]
    (folder / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for i, s in enumerate(src):
        name = f"{sub}/d{i}.jpg" if sub else f"d{i}.jpg"
        shutil.copy(s, folder / name)
        names.append(name)
    return names


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG of ``width`` × ``height`` black pixels in a few hundred KB, made without holding the pixels:
    one black row is deflated once (a full flush makes it independent of what precedes it) and repeated."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + 3 * width)  # filter byte + RGB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(row) + comp.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # the final, empty block
    adler = ((len(row) * height) % 65521) << 16 | 1  # Adler-32 of all-zero bytes: a = 1, b = n mod 65521
    idat = b"\x78\xda" + block * height + end + struct.pack(">I", adler)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def broken_images(folder: Path) -> dict[str, str]:
    """Files that are not readable images, by name -> a word their reason must contain."""
    good = sorted(DEMO.glob("*/*.jpg"))[0].read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "text.jpg").write_text("not an image at all\n")
    bomb_png(folder / "bomb.png")
    return {"empty.jpg": "empty", "truncated.jpg": "truncated", "text.jpg": "not an image", "bomb.png": "limit"}
