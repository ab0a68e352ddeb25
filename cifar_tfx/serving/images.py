"""Image files to the encoded bytes the ``serving_images`` signature takes."""

from __future__ import annotations

import io
import os
from typing import List, Sequence, Tuple

from PIL import Image, UnidentifiedImageError

from cifar_tfx.data.errors import DataError


MAX_PIXELS = 4096 * 4096  # larger images are refused from their header, before decoding


def load_images(paths: Sequence[str], size: Tuple[int, int] = (32, 32), resize: bool = False) -> List[bytes]:
    """Bytes of each image file, checked to decode and to be ``size`` (width, height).

    PNG and JPEG files of the right size are sent as they are. With ``resize``,
    other sizes and formats are resized (bilinear) and re-encoded as PNG;
    without it they are an error that names the file.
    """
    encoded = []
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"no such image file: {path}")
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only
            if image.width * image.height > MAX_PIXELS:
                raise DataError(f"{path} declares {image.width}x{image.height} pixels, more than "
                                f"{MAX_PIXELS:,}; refused before decoding")
            image.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise DataError(f"{path} is not a readable image: {err}") from err
        if image.size == size and image.format in ("PNG", "JPEG"):
            encoded.append(data)
        elif resize:
            buffer = io.BytesIO()
            image.convert("RGB").resize(size, Image.BILINEAR).save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        else:
            raise DataError(f"{path} is a {image.size[0]}x{image.size[1]} {image.format}; the model takes "
                            f"{size[0]}x{size[1]} PNG or JPEG (pass --resize to convert)")
    return encoded
