"""Finding, decoding, resizing and batching images; query boxes."""

from retrievalkit.images.decode import ImageReadError, crop_box, load_image, resize_longer
from retrievalkit.images.discover import find_images, read_list_file, resolve_name, strip_extension
from retrievalkit.images.loader import ImageDataset, LoadedImage, iter_images

__all__ = ["ImageReadError", "crop_box", "load_image", "resize_longer", "find_images", "read_list_file",
           "resolve_name", "strip_extension", "ImageDataset", "LoadedImage", "iter_images"]
