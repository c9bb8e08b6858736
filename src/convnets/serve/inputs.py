"""What a client sends, bounded before it costs memory or time, and how it is described.

A body over ``max_bytes`` is refused with 413 from its Content-Length header, or,
without one, as soon as the bytes received pass the limit (it is never read whole:
:class:`LimitBody`); an image whose header declares more than ``max_pixels`` pixels is
refused before its pixels are decoded (:func:`convnets.data.images.load_rgb`); an
occlusion map is refused above :data:`MAX_OCCLUSION_POSITIONS` forward passes. Images
are read from memory only (:func:`image_bytes`): no request names a file, and nothing is
written but what the multipart parser spools. :func:`image_body` and
:func:`occlusion_parameters` describe these inputs for ``/openapi.json``.
"""
from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from .replies import BodyTooLarge, ServeError, UnsupportedMediaType, refusal

__all__ = ["LimitBody", "image_bytes", "image_body", "occlusion_positions",
           "check_occlusion_positions", "smallest_stride", "MAX_OCCLUSION_POSITIONS",
           "IMAGE_TYPES"]

# Positions of the occluding square per map: a 16 x 16 grid (the default stride) is 256
# forward passes; a client asking for stride 1 on a 224-pixel input would ask for 50,176.
MAX_OCCLUSION_POSITIONS = 1024
# The raw bodies taken as an image (any image/* type, by its prefix), besides a multipart upload.
IMAGE_TYPES = ("image/", "application/octet-stream")
_MULTIPART = "multipart/form-data"
_MAX_FORM_FIELDS = 8  # besides the file: a form may carry a few, never thousands
# The upload types the API description names; any format load_rgb reads is taken.
_UPLOAD_TYPES = "image/png, image/jpeg, image/gif, image/webp"


class LimitBody:
    """ASGI middleware: 413 for a body over ``max_bytes``, told by its Content-Length or
    found while it streams in (the route reading it then gets :class:`BodyTooLarge`)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            return await refusal(400, "bad Content-Length header", close=True)(scope, receive, send)
        if length is not None and int(length) > self.max_bytes:
            text = f"the body is {int(length):,} bytes, more than the limit of {self.max_bytes:,}"
            return await refusal(413, text, close=True)(scope, receive, send)
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(f"the body is more than the limit of {self.max_bytes:,} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def image_bytes(request: Request) -> bytes:
    """The image a request carries: the first file of a multipart form, or the raw body
    (``Content-Type`` image/..., application/octet-stream, or none)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == _MULTIPART:
        form = await request.form(max_files=1, max_fields=_MAX_FORM_FIELDS)
        try:
            upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
            if upload is None:
                raise ServeError("the multipart form holds no file: send the image as a file "
                                 "field (e.g. curl -F file=@digit.png)")
            return await upload.read()
        finally:
            await form.close()
    if kind and not kind.startswith(IMAGE_TYPES):
        raise UnsupportedMediaType(f"Content-Type {kind} is not an image: send image/* or "
                                   "application/octet-stream, or a multipart/form-data upload")
    return await request.body()


def image_body() -> dict:
    """The OpenAPI ``requestBody`` :func:`image_bytes` reads (for ``openapi_extra``).

    A raw application/octet-stream body is read as an image too, but said only in words:
    listed as a media type, its schema (any bytes) would tell a client, or a schema-driven
    tester, that any bytes are an answerable request, and they are not; ``image/*`` says
    what the body must be. The form is described as the one field ``file`` although the
    server takes the first file under any name and ignores a few other fields: what a
    client sends by the description is always understood, and a description as lenient
    as the server cannot be written (a form's parts are all text on the wire)."""
    binary = {"type": "string", "format": "binary"}
    return {"requestBody": {
        "required": True,
        "description": "one image (PNG, JPEG, GIF, WebP, BMP, TIFF, ...): a multipart upload "
                       "whose file field is the image, or the image as the raw body with its "
                       "image/* type (application/octet-stream, or no Content-Type, is read "
                       "the same way)",
        "content": {
            _MULTIPART: {"schema": {"type": "object", "properties": {"file": binary},
                                    "required": ["file"],
                                    "additionalProperties": False},
                         "encoding": {"file": {"contentType": _UPLOAD_TYPES}}},
            "image/*": {"schema": binary}}}}


# --- occlusion maps ------------------------------------------------------------------------

def occlusion_positions(height: int, width: int, stride: int) -> int:
    """Positions of the occluding square on a ``height`` x ``width`` input."""
    from ..inspect.visualize.occlusion import occlusion_grid

    rows, cols = occlusion_grid(height, width, stride)
    return rows * cols


def check_occlusion_positions(height: int, width: int, stride: int) -> None:
    """A ServeError if ``stride`` asks for more than :data:`MAX_OCCLUSION_POSITIONS`."""
    positions = occlusion_positions(height, width, stride)
    if positions > MAX_OCCLUSION_POSITIONS:
        raise ServeError(f"stride {stride} gives {positions:,} positions on a {height}x{width} "
                         f"input, more than {MAX_OCCLUSION_POSITIONS:,}: give a larger stride")


def smallest_stride(height: int, width: int) -> int:
    """The smallest stride :func:`check_occlusion_positions` takes on this input."""
    stride = max(1, math.isqrt(height * width // MAX_OCCLUSION_POSITIONS))
    while occlusion_positions(height, width, stride) > MAX_OCCLUSION_POSITIONS:
        stride += 1
    return stride
