"""Damaged image files given to ``predict``: one error line naming the file, whichever decoder PIL picks."""

import io
import resource
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cifar_tfx.cli import EXIT_BAD_INPUT, main
from cifar_tfx.data.errors import DataError
from cifar_tfx.serving.images import load_images

FORMATS = ["PNG", "GIF", "PPM", "QOI", "DDS", "SGI", "BMP", "TIFF", "JPEG", "TGA", "PCX"]


def _sample(fmt):
    """A 32x32 image with two diagonals, as PIL writes it in ``fmt`` (GIF from its palette version)."""
    image = Image.new("RGB", (32, 32), (10, 200, 30))
    for x in range(32):
        image.putpixel((x, x), (255, 0, 0))
        image.putpixel((x, 31 - x), (0, 0, 255))
    buffer = io.BytesIO()
    (image.convert("P") if fmt == "GIF" else image).save(buffer, format=fmt)
    return buffer.getvalue()


def _damaged(fmt, edits, cut=None):
    data = bytearray(_sample(fmt))
    for offset, value in edits:
        data[offset] = value
    return bytes(data[:cut])


# Found by fuzzing the files above (PIL 12.3); what each made `predict` raise before the decode wrapper.
CASES = {
    "png-syntax-error": ("PNG", [(169, 187), (36, 129)], None),      # SyntaxError: broken PNG file
    "png-value-error": ("PNG", [(88, 166), (11, 11)], None),         # ValueError: Truncated IHDR chunk
    "gif-value-error": ("GIF", [(197, 123), (66, 0)], None),         # ValueError: tile cannot extend outside
    "ppm-value-error": ("PPM", [(183, 4), (5, 249)], None),          # ValueError: invalid literal for int()
    "qoi-index-error": ("QOI", [(78, 45)], None),                    # IndexError: index out of range
    "qoi-value-error": ("QOI", [(106, 53)], 23),                     # ValueError: not enough values to unpack
    "dds-value-error": ("DDS", [(16, 253)], None),                   # ValueError: not enough image data
    "dds-not-implemented": ("DDS", [(80, 139), (9, 26)], None),      # NotImplementedError: pixel format flags
    "sgi-value-error": ("SGI", [(5, 109)], None),                    # ValueError: Unsupported SGI image mode
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_image_is_one_data_error_naming_the_file(case, tmp_path):
    fmt, edits, cut = CASES[case]
    path = tmp_path / f"{case}.{fmt.lower()}"
    path.write_bytes(_damaged(fmt, edits, cut))
    with pytest.raises(DataError, match=f"^{path} is not a readable image: ") as refused:
        load_images([str(path)], resize=True)
    assert "\n" not in str(refused.value)


def test_predict_on_a_damaged_image_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "cat.qoi"
    path.write_bytes(_damaged("QOI", [(78, 45)]))
    assert main(["predict", str(path), "--resize", "--print-request"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path} is not a readable image"), err


@settings(max_examples=200, deadline=2000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fmt=st.sampled_from(FORMATS), edits=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)),
                                                      min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(1, 4000)))
def test_any_damage_to_any_format_is_decoded_or_one_data_error(tmp_path_factory, fmt, edits, cut):
    data = bytearray(_sample(fmt))
    for offset, value in edits:
        data[offset % len(data)] = value
    path = tmp_path_factory.getbasetemp() / f"fuzzed.{fmt.lower()}"
    path.write_bytes(bytes(data[:cut]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning and the like
        try:
            encoded = load_images([str(path)], resize=True)
            assert len(encoded) == 1 and encoded[0]
        except DataError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KB
