"""What an image upload is, told to schemathesis (its ``media_type`` hook): real PNG,
JPEG, GIF and WebP files of random sizes and colours, for the upload types the API
description names.

Without it schemathesis fills a ``format: binary`` file field with random bytes, which
the schema allows and the server rightly refuses (400, not an image): JSON Schema has no
way to say that bytes must decode as an image. Load it with ``SCHEMATHESIS_HOOKS=<this
file>``.
"""
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}


def _images(fmt: str) -> st.SearchStrategy[bytes]:
    @st.composite
    def image(draw) -> bytes:
        size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
        mode = draw(st.sampled_from(["RGB", "L"]))
        colour = draw(st.integers(0, 255))
        buf = io.BytesIO()
        Image.new(mode, size, colour if mode == "L" else (colour, 255 - colour, 90)).save(
            buf, format=fmt)
        return buf.getvalue()

    return image()


for media_type, fmt in FORMATS.items():
    schemathesis.openapi.media_type(media_type, _images(fmt))
