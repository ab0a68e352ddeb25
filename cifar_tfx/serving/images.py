"""Image files to the encoded bytes the ``serving_images`` signature takes."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
from typing import Iterator, List, Sequence, Tuple

from PIL import Image, UnidentifiedImageError

from cifar_tfx import storage
from cifar_tfx.data.errors import DataError


MAX_PIXELS = 4096 * 4096  # larger images are refused from their header, before decoding
MAX_FILE_BYTES = 128 * 2**20  # above any PNG of MAX_PIXELS (16M pixels x 4 bytes, stored uncompressed); not read


def load_images(paths: Sequence[str], size: Tuple[int, int] = (32, 32), resize: bool = False) -> List[bytes]:
    """Bytes of each image file, checked to decode and to be ``size`` (width, height).

    PNG and JPEG files of the right size are sent as they are. With ``resize``,
    other sizes and formats are resized (bilinear) and re-encoded as PNG;
    without it they are an error that names the file.
    """
    encoded = []
    for path in paths:
        image, data = _open_image(path)
        if image.size == size and image.format in ("PNG", "JPEG"):
            encoded.append(data)
        elif resize:
            buffer = io.BytesIO()
            with decoding(path):
                image.convert("RGB").resize(size, Image.BILINEAR).save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        else:
            raise DataError(f"{path} is a {image.size[0]}x{image.size[1]} {image.format}; the model takes "
                            f"{size[0]}x{size[1]} PNG or JPEG (pass --resize to convert)")
    return encoded


def _open_image(path: str) -> Tuple[Image.Image, bytes]:
    """The decoded image at ``path`` and its file's bytes; a :class:`DataError` naming the file if it is
    not a regular file, is empty or larger than :data:`MAX_FILE_BYTES`, is not an image PIL knows, declares
    more than :data:`MAX_PIXELS`, or is damaged."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"no such image file: {path}") from None
    except OSError as err:  # a component of the path is a file, or is not ours to search
        raise DataError(f"{path} cannot be read: {err.strerror}") from err
    if stat.S_ISDIR(status.st_mode):
        raise DataError(f"{path} is a folder, not an image file")
    if not stat.S_ISREG(status.st_mode):
        raise DataError(f"{path} is not a regular file (a device or a pipe?), not an image file")
    if status.st_size > MAX_FILE_BYTES:
        raise DataError(f"{path} holds {status.st_size:,} bytes, more than any image of at most "
                        f"{MAX_PIXELS:,} pixels ({MAX_FILE_BYTES:,}); refused before reading")
    try:
        with storage.open_binary(path) as handle:  # fstat on the open descriptor: a pipe swapped in is refused
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise DataError(f"{path} cannot be read: {err.strerror or err}") from None
    if not data:
        raise DataError(f"{path} is not a readable image: the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"{path} grew past {MAX_FILE_BYTES:,} bytes while being read; refused")
    with decoding(path):
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.width * image.height > MAX_PIXELS:
            raise DataError(f"{path} declares {image.width}x{image.height} pixels, more than "
                            f"{MAX_PIXELS:,}; refused before decoding")
        image.load()
    return image, data


# What PIL's decoders raise on a damaged file besides OSError: found by fuzzing PNG, GIF, PPM, QOI, DDS, SGI,
# TIFF and other files with flipped and cut bytes (PIL 12.3: ValueError from PPM headers, IndexError from QOI,
# SyntaxError from a broken GIF or PPM header, NotImplementedError from a DDS pixel format it lacks).
DAMAGED_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, IndexError, KeyError, NotImplementedError, TypeError,
                        EOFError, ZeroDivisionError, OverflowError, AttributeError, struct.error)


@contextlib.contextmanager
def decoding(path: str) -> Iterator[None]:
    """Every step that decodes or converts the image at ``path``: what a damaged file makes PIL raise becomes
    one :class:`DataError` naming the file (never PIL's in-memory buffer)."""
    try:
        yield
    except DataError:
        raise
    except UnidentifiedImageError as err:  # its message names an in-memory buffer, not the file
        raise DataError(f"{path} is not a readable image: not a format PIL recognises (PNG or JPEG expected)") from err
    except Image.DecompressionBombError as err:  # PIL refuses the header itself when far over its own limit
        raise DataError(f"{path} declares more than {MAX_PIXELS:,} pixels; refused before decoding") from err
    except RecursionError as err:  # a RuntimeError, so named before the others
        raise DataError(f"{path} is not a readable image: it nests too deeply") from err
    except DAMAGED_IMAGE_ERRORS as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DataError(f"{path} is not a readable image: {reason}") from err
