"""Copy augmentations (OpenCV/numpy): the edits DISC21 documents, for self-supervised copy-detection training.

Every augmentation is a function ``aug(img, rng, strength, **kw) -> img`` on an RGB uint8 image (H, W, 3):
``rng`` is a ``numpy.random.Generator`` (the only source of randomness, so a seed fixes the result),
``strength`` in [0, 1] scales how far the edit goes (0: almost the identity, 1: the strongest edit DISC21-style
queries show). The result is always a valid C-contiguous uint8 RGB image of at least 8×8 pixels.

:func:`copy_view` chains them into one random training view (SSCD-style: random resized crop, flips, colour,
blur, noise, overlays, image-in-image, JPEG) resized to a square of ``size`` pixels.

Example:
    >>> rng = np.random.default_rng(0)
    >>> out = AUGMENTATIONS["text"](img, rng, 0.5)
    >>> view = copy_view(img, rng, 224, others=[other_img])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

MIN_SIDE = 8
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !?#@&%"))


def _valid(img: np.ndarray) -> np.ndarray:
    """uint8, 3 channels, contiguous, at least MIN_SIDE on each side."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img
    h, w = img.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        img = cv2.resize(img, (max(w, MIN_SIDE), max(h, MIN_SIDE)), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


def _strength(s: float) -> float:
    return float(min(max(s, 0.0), 1.0))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    w, h = max(1, int(w)), max(1, int(h))
    interp = cv2.INTER_AREA if w * h < img.shape[0] * img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


# ------------------------------------------------------------------------------------------- geometric edits


def crop(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """A random crop keeping a fraction of the area in [1 − 0.9·strength, 1], aspect ratio jittered."""
    s = _strength(strength)
    h, w = img.shape[:2]
    area = rng.uniform(1.0 - 0.9 * s, 1.0)
    ratio = np.exp(rng.uniform(-0.5, 0.5) * s)
    cw = int(round(min(w, max(1, w * np.sqrt(area * ratio)))))
    ch = int(round(min(h, max(1, h * np.sqrt(area / ratio)))))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return _valid(img[y:y + ch, x:x + cw])


def pad(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Borders of a random colour, each side up to 0.4·strength of the image size."""
    s = _strength(strength)
    h, w = img.shape[:2]
    t, b = (int(v) for v in rng.uniform(0, 0.4 * s, 2) * h)
    left, r = (int(v) for v in rng.uniform(0, 0.4 * s, 2) * w)
    return _valid(cv2.copyMakeBorder(img, t, b, left, r, cv2.BORDER_CONSTANT, value=_colour(rng)))


def scale(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Resize by a factor in [1 − 0.8·strength, 1 + 0.5·strength], aspect ratio jittered by up to ±30 %·strength."""
    s = _strength(strength)
    h, w = img.shape[:2]
    f = rng.uniform(1.0 - 0.8 * s, 1.0 + 0.5 * s)
    a = np.exp(rng.uniform(-0.3, 0.3) * s)
    return _valid(_resize(img, w * f * np.sqrt(a), h * f / np.sqrt(a)))


def flip(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Mirror left-right; with probability strength/2 upside down instead."""
    if rng.random() < 0.5 * _strength(strength):
        return _valid(img[::-1])
    return _valid(img[:, ::-1])


def rotate(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Rotate by up to ±180°·strength (a quarter turn with probability strength/4), the canvas grown to hold
    the whole image, corners filled with a random colour."""
    s = _strength(strength)
    if rng.random() < 0.25 * s:
        return _valid(np.rot90(img, int(rng.integers(1, 4))))
    angle = rng.uniform(-180.0, 180.0) * s
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, sn = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sn + w * c), int(h * c + w * sn)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return _valid(cv2.warpAffine(img, m, (max(nw, 1), max(nh, 1)), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=_colour(rng)))


def perspective(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Move each corner by up to 20 %·strength of the size (a photo of a screen, a skewed copy)."""
    s = _strength(strength)
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + (rng.uniform(-0.2, 0.2, (4, 2)) * s * np.float32([w, h])).astype(np.float32)
    dst -= dst.min(axis=0)
    nw, nh = (int(v) + 1 for v in dst.max(axis=0))
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    return _valid(cv2.warpPerspective(img, m, (nw, nh), borderMode=cv2.BORDER_CONSTANT, borderValue=_colour(rng)))


# ------------------------------------------------------------------------------------------- photometric edits


def colour(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Brightness, contrast, saturation (±80 %·strength) and hue (±0.5·strength of the circle) jitter; with
    probability strength/4 grey instead of the saturation change."""
    s = _strength(strength)
    x = img.astype(np.float32)
    x = x * rng.uniform(1 - 0.8 * s, 1 + 0.8 * s)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - 0.8 * s, 1 + 0.8 * s) + mean  # contrast
    grey = x @ np.float32([0.299, 0.587, 0.114])
    if rng.random() < 0.25 * s:
        x = np.repeat(grey[..., None], 3, axis=2)
    else:
        x = (x - grey[..., None]) * rng.uniform(1 - 0.8 * s, 1 + 0.8 * s) + grey[..., None]  # saturation
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    shift = int(round(rng.uniform(-0.5, 0.5) * s * 180))
    if shift:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return _valid(out)


def blur(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Gaussian blur, sigma up to 0.1 px + 2 %·strength of the shorter side (10 px at 500 px)."""
    s = _strength(strength)
    sigma = 0.1 + rng.uniform(0, 1) * s * 0.02 * min(img.shape[:2])
    return _valid(cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma)))


def noise(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Additive Gaussian noise, standard deviation up to 40·strength grey levels."""
    sd = rng.uniform(0, 40.0 * _strength(strength))
    return _valid(img.astype(np.float32) + rng.normal(0, sd, img.shape).astype(np.float32))


def jpeg(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """JPEG re-encoding at quality uniform in [95 − 85·strength, 95]."""
    q = int(rng.uniform(95 - 85 * _strength(strength), 95))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        return _valid(img)
    return _valid(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def pixelate(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """Blocks of 1 + 15·strength·u pixels (u uniform): shrunk with area averaging, grown back without
    interpolation (AugLy's pixelization)."""
    block = 1.0 + 15.0 * _strength(strength) * rng.uniform(0, 1)
    h, w = img.shape[:2]
    small = _resize(img, max(1, round(w / block)), max(1, round(h / block)))
    return _valid(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST))


def fade(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """The image made partly transparent over a plain white, grey or black page: opacity down to
    1 − 0.8·strength (AugLy's opacity; a washed-out copy)."""
    alpha = rng.uniform(1.0 - 0.8 * _strength(strength), 1.0)
    page = float((255, 255, 255, 128, 0)[int(rng.integers(5))])
    return _valid(img.astype(np.float32) * alpha + page * (1.0 - alpha))


# ------------------------------------------------------------------------------------------- overlays


def _random_text(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(_CHARS, n)).strip() or "copy"


def text(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """1 to 1 + 4·strength lines of random text (cv2.putText), font height up to 5–20 % of the image."""
    s = _strength(strength)
    out = img.copy()
    h, w = out.shape[:2]
    for _ in range(1 + int(rng.integers(0, 1 + int(4 * s)))):
        font = _FONTS[int(rng.integers(len(_FONTS)))]
        px = max(6.0, min(h, w) * rng.uniform(0.05, 0.05 + 0.15 * s))
        fscale = px / 22.0
        thick = max(1, int(round(fscale * rng.uniform(1, 3))))
        msg = _random_text(rng, int(rng.integers(3, 16)))
        (tw, th), _ = cv2.getTextSize(msg, font, fscale, thick)
        x = int(rng.integers(-tw // 4, max(1, w - tw // 2)))
        y = int(rng.integers(th, max(th + 1, h)))
        col = _colour(rng)
        if rng.random() < 0.5:  # outlined, meme-like
            cv2.putText(out, msg, (x, y), font, fscale, (255 - col[0], 255 - col[1], 255 - col[2]), thick + 2,
                        cv2.LINE_AA)
        cv2.putText(out, msg, (x, y), font, fscale, col, thick, cv2.LINE_AA)
    return _valid(out)


def _emoji(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    """A d×d emoji-like sticker (smiley, star, heart or polygon) and its alpha mask."""
    pic = np.zeros((d, d, 3), np.uint8)
    mask = np.zeros((d, d), np.uint8)
    col = _colour(rng)
    r = d // 2
    kind = int(rng.integers(4))
    if kind == 0:  # smiley
        cv2.circle(mask, (r, r), r - 1, 255, -1, cv2.LINE_AA)
        cv2.circle(pic, (r, r), r - 1, col, -1, cv2.LINE_AA)
        dark = (20, 20, 20)
        cv2.circle(pic, (r - r // 3, r - r // 4), max(1, r // 7), dark, -1, cv2.LINE_AA)
        cv2.circle(pic, (r + r // 3, r - r // 4), max(1, r // 7), dark, -1, cv2.LINE_AA)
        cv2.ellipse(pic, (r, r + r // 8), (r // 2, r // 3), 0, 10, 170, dark, max(1, r // 10), cv2.LINE_AA)
    elif kind == 1:  # star
        ang = np.arange(10) * np.pi / 5 - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r - 1, (r - 1) * 0.45)
        pts = np.stack([r + rad * np.cos(ang), r + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(pic, [pts], col, cv2.LINE_AA)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
    elif kind == 2:  # heart
        t = np.linspace(0, 2 * np.pi, 64)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([r + x / 17 * (r - 1), r + y / 17 * (r - 1)], 1).astype(np.int32)
        cv2.fillPoly(pic, [pts], col, cv2.LINE_AA)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
    else:  # random polygon
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        pts = np.stack([r + (r - 1) * np.cos(ang), r + (r - 1) * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(pic, [pts], col, cv2.LINE_AA)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
    return pic, mask


def _paste(dst: np.ndarray, pic: np.ndarray, mask: np.ndarray | None, x: int, y: int, opacity: float) -> None:
    """Alpha-blend ``pic`` into ``dst`` at (x, y), clipped to ``dst``; in place."""
    h, w = dst.shape[:2]
    ph, pw = pic.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    if x1 <= x0 or y1 <= y0:
        return
    p = pic[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32)
    a = np.full(p.shape[:2], opacity, np.float32) if mask is None else \
        mask[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32) / 255.0 * opacity
    region = dst[y0:y1, x0:x1].astype(np.float32)
    dst[y0:y1, x0:x1] = np.clip(region + (p - region) * a[..., None], 0, 255).astype(np.uint8)


def emoji(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """1 to 1 + 3·strength emoji-like stickers, each 10 % to 10 + 40 %·strength of the shorter side."""
    s = _strength(strength)
    out = img.copy()
    h, w = out.shape[:2]
    for _ in range(1 + int(rng.integers(0, 1 + int(3 * s)))):
        d = max(4, int(min(h, w) * rng.uniform(0.1, 0.1 + 0.4 * s)))
        pic, mask = _emoji(rng, d)
        _paste(out, pic, mask, int(rng.integers(-d // 4, w - d // 2)), int(rng.integers(-d // 4, h - d // 2)),
               rng.uniform(0.7, 1.0))
    return _valid(out)


def _other(rng: np.random.Generator, others: Sequence[np.ndarray] | None, h: int, w: int) -> np.ndarray:
    """One of ``others`` at random, or (none given) a random colour gradient of size h×w."""
    if others:
        return others[int(rng.integers(len(others)))]
    a, b = np.float32(_colour(rng)), np.float32(_colour(rng))
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    return np.repeat((a + (b - a) * t).astype(np.uint8), h, axis=0)


def overlay_image(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5,
                  others: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Another image (one of ``others``; a gradient without them) pasted on top, 5 % to 5 + 45 %·strength of the
    area, opacity 0.5 to 1."""
    s = _strength(strength)
    out = img.copy()
    h, w = out.shape[:2]
    o = _other(rng, others, h, w)
    area = rng.uniform(0.05, 0.05 + 0.45 * s) * h * w
    oh, ow = o.shape[:2]
    f = np.sqrt(area / (oh * ow))
    o = _resize(o, min(w, ow * f), min(h, oh * f))
    oh, ow = o.shape[:2]
    _paste(out, o, None, int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1)), rng.uniform(0.5, 1.0))
    return _valid(out)


def image_in_image(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5,
                   others: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The image shrunk into a larger canvas: a meme (caption bars of text above and below), a screenshot (a
    window with a title bar and side panels) or a picture in another picture (one of ``others`` as the
    background). The image keeps 1 − 0.7·strength to 1 of the canvas's sides (at least 30 %)."""
    s = _strength(strength)
    h, w = img.shape[:2]
    frac = rng.uniform(max(0.3, 1.0 - 0.7 * s), 1.0)
    kind = int(rng.integers(3))
    if kind == 0:  # meme: caption bars
        bar = max(2, int(h * (1 - frac) / 2 + 0.08 * h))
        bg = (255, 255, 255) if rng.random() < 0.7 else (0, 0, 0)
        out = cv2.copyMakeBorder(img, bar, bar, 0, 0, cv2.BORDER_CONSTANT, value=bg)
        fg = tuple(255 - v for v in bg)
        for y in (0, bar + h):
            msg = _random_text(rng, int(rng.integers(5, 20)))
            fscale = max(0.2, 0.6 * bar / 22.0)
            (tw, _), _ = cv2.getTextSize(msg, cv2.FONT_HERSHEY_DUPLEX, fscale, 1)
            if tw > w:
                fscale *= w / tw
            cv2.putText(out, msg, (int(rng.integers(0, max(1, w // 10))), y + int(bar * 0.7)),
                        cv2.FONT_HERSHEY_DUPLEX, fscale, fg, max(1, int(fscale)), cv2.LINE_AA)
        return _valid(out)
    ch, cw = int(h / frac), int(w / frac)
    if kind == 1:  # screenshot: window chrome around the picture
        grey = int(rng.integers(200, 250))
        out = np.full((ch, cw, 3), grey, np.uint8)
        title = max(3, int(0.06 * ch))
        out[:title] = _colour(rng)
        cv2.putText(out, _random_text(rng, 10), (4, int(title * 0.75)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.2, title / 40.0), (255, 255, 255), 1, cv2.LINE_AA)
        for _ in range(int(rng.integers(1, 5))):  # buttons / text blocks of a page
            x, y = int(rng.integers(0, cw)), int(rng.integers(title, ch))
            cv2.rectangle(out, (x, y), (x + int(rng.integers(5, cw // 3 + 6)), y + int(rng.integers(3, 12))),
                          _colour(rng), -1)
        y0 = title + int(rng.integers(0, max(1, ch - h - title + 1)))
        x0 = int(rng.integers(0, max(1, cw - w + 1)))
    else:  # picture in picture
        out = _resize(_other(rng, others, ch, cw), cw, ch).copy()
        y0, x0 = int(rng.integers(0, ch - h + 1)), int(rng.integers(0, cw - w + 1))
    out[y0:y0 + h, x0:x0 + w] = img[:min(h, ch - y0), :min(w, cw - x0)]
    return _valid(out)


def screenshot(img: np.ndarray, rng: np.random.Generator, strength: float = 0.5,
               others: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The image as a post on a social-media page (AugLy's overlay onto a screenshot, a frequent DISC21 edit): a
    light (or dark) page with a top bar, icons, grey text lines and thumbnails of ``others`` around the picture.
    The picture spans 1 − 0.85·strength to 1 of the page's width (at least 15 %)."""
    s = _strength(strength)
    h, w = img.shape[:2]
    frac = rng.uniform(max(0.15, 1.0 - 0.85 * s), 1.0)
    pw = max(w, int(round(w / frac)))
    top = max(2, int(pw * rng.uniform(0.02, 0.05)))
    ph = max(h + top + max(2, h // 10), int(pw * rng.uniform(0.45, 1.0)))
    dark = rng.random() < 0.2
    out = np.full((ph, pw, 3), int(rng.integers(15, 45)) if dark else int(rng.integers(228, 256)), np.uint8)
    ink = (lambda: int(rng.integers(150, 220))) if dark else (lambda: int(rng.integers(90, 200)))
    out[:top] = _colour(rng) if rng.random() < 0.5 else ink()
    unit = max(2, pw // 60)
    for _ in range(int(rng.integers(10, 40))):  # page furniture: icons, text lines, thumbnails
        x, y = int(rng.integers(0, pw)), int(rng.integers(top, ph))
        kind = rng.random()
        if kind < 0.35:
            cv2.circle(out, (x, y), int(unit * rng.uniform(0.5, 1.5)), _colour(rng) if rng.random() < 0.5 else
                       (ink(),) * 3, -1, cv2.LINE_AA)
        elif kind < 0.85:
            g = ink()
            cv2.rectangle(out, (x, y), (x + int(unit * rng.uniform(3, 15)), y + max(1, unit // 2)), (g, g, g), -1)
        else:
            t = int(unit * rng.uniform(3, 8))
            _paste(out, _resize(_other(rng, others, t, t), t, t), None, x, y, 1.0)
    x0 = int(rng.integers(0, pw - w + 1))
    y0 = int(rng.integers(top + (ph - h - top) // 3, ph - h + 1))
    out[y0:y0 + h, x0:x0 + w] = img
    return _valid(out)


Augmentation = Callable[..., np.ndarray]

#: every augmentation by name, in the order of the docs' picture grid
AUGMENTATIONS: dict[str, Augmentation] = {
    "crop": crop, "pad": pad, "scale": scale, "flip": flip, "rotate": rotate, "perspective": perspective,
    "colour": colour, "blur": blur, "noise": noise, "jpeg": jpeg, "text": text, "emoji": emoji,
    "overlay_image": overlay_image, "image_in_image": image_in_image, "screenshot": screenshot,
    "pixelate": pixelate, "fade": fade,
}
#: the augmentations that take ``others`` (images to overlay / to use as backgrounds)
USES_OTHERS = ("overlay_image", "image_in_image", "screenshot")


def apply(name: str, img: np.ndarray, rng: np.random.Generator, strength: float = 0.5,
          others: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Augmentation ``name`` (a key of :data:`AUGMENTATIONS`) on ``img``."""
    fn = AUGMENTATIONS[name]
    if name in USES_OTHERS:
        return fn(img, rng, strength, others=others)
    return fn(img, rng, strength)


def random_resized_crop(img: np.ndarray, rng: np.random.Generator, size: int, min_area: float = 0.08,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """The usual random resized crop: area fraction in [min_area, 1], aspect ratio log-uniform in ``ratio``,
    resized to size×size."""
    h, w = img.shape[:2]
    for _ in range(10):
        a = rng.uniform(min_area, 1.0) * h * w
        r = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(a * r))), int(round(np.sqrt(a / r)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return _valid(_resize(img[y:y + ch, x:x + cw], size, size))
    return _valid(_resize(img, size, size))


#: probability of each edit in a training view (SSCD's "advanced" augmentations plus DISC21's edit kinds); the
#: canvas edits (image in image, screenshot) exclude each other: one view in four sits in a larger canvas
VIEW_PROBS: dict[str, float] = {
    "rotate": 0.1, "perspective": 0.05, "image_in_image": 0.125, "screenshot": 0.125, "flip": 0.5, "colour": 0.8,
    "fade": 0.1, "blur": 0.3, "pixelate": 0.1, "noise": 0.1, "text": 0.2, "emoji": 0.2, "overlay_image": 0.1,
    "pad": 0.05, "jpeg": 0.3,
}


def copy_view(img: np.ndarray, rng: np.random.Generator, size: int, strength: float = 1.0,
              others: Sequence[np.ndarray] | None = None, min_area: float = 0.08) -> np.ndarray:
    """One random training view of ``img``: rotation / perspective (rarely), random resized crop to size×size,
    then (one view in four) the crop set in a larger canvas — image in image or a screenshot — shrunk back to
    size×size, so a canvas never crops the picture away; then flips, colour, fading, blur, pixelation, noise,
    text, emoji, image overlays, padding and JPEG, each with its probability in :data:`VIEW_PROBS` and a strength
    drawn in [0, ``strength``]."""

    def maybe(name: str, x: np.ndarray) -> np.ndarray:
        if rng.random() < VIEW_PROBS[name]:
            return apply(name, x, rng, rng.uniform(0.0, strength), others)
        return x

    x = img
    for name in ("rotate", "perspective"):
        x = maybe(name, x)
    x = random_resized_crop(x, rng, size, min_area)
    u = rng.random()
    if u < VIEW_PROBS["image_in_image"] + VIEW_PROBS["screenshot"]:
        name = "image_in_image" if u < VIEW_PROBS["image_in_image"] else "screenshot"
        x = _resize(apply(name, x, rng, rng.uniform(0.0, strength), others), size, size)
    for name in ("flip", "colour", "fade", "blur", "pixelate", "noise", "text", "emoji", "overlay_image", "pad"):
        x = maybe(name, x)
    if x.shape[:2] != (size, size):
        x = _resize(x, size, size)
    return _valid(maybe("jpeg", x))
