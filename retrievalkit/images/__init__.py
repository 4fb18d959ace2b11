"""Finding, decoding, resizing and batching images; query boxes.

The names below load on first use (PEP 562), so reading the image policy does not import cv2 or torch.
"""

import importlib

_WHERE = {
    "ImageReadError": "decode", "crop_box": "decode", "load_image": "decode", "resize_longer": "decode",
    "find_images": "discover", "read_list_file": "discover", "resolve_name": "discover", "strip_extension": "discover",
    "ImageDataset": "loader", "LoadedImage": "loader", "iter_images": "loader",
}

__all__ = ["ImageReadError", "crop_box", "load_image", "resize_longer", "find_images", "read_list_file",
           "resolve_name", "strip_extension", "ImageDataset", "LoadedImage", "iter_images"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__():
    return sorted([*globals(), *__all__])
