"""Reading a request body the way every write route must: declared as JSON (415 otherwise), bounded
before it is read whole, parsed as JSON with a clear 400, so a huge, chunked or malformed body never
hangs or kills a worker.

Why the content type is checked: a web page on any origin may post `text/plain` (or a form) to
another site without a CORS preflight. Requiring `application/json` means a cross-site post needs a
preflight, which the shop's CORS policy answers; a stray page cannot write events for a shopper."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request


async def read_bounded(request: Request, max_bytes: int) -> bytes:
    """The raw body, 413 past `max_bytes` (declared or streamed): never more than that is held."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, {"reason": "too_large", "message": f"the body is {int(declared):,} bytes, "
                                                                    f"at most {max_bytes:,} allowed"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, {"reason": "too_large", "message": f"the body is over {max_bytes:,} bytes"})
    return bytes(body)


async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON: 415 unless declared `application/json` (or `+json`), 413 past `max_bytes`
    (declared or streamed), 400 when it is not JSON."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise HTTPException(415, {"reason": "not_json_content_type",
                                  "message": f"the body must be sent as application/json, not {media or 'untyped'}"})
    body = await read_bounded(request, max_bytes)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        message = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise HTTPException(400, {"reason": "not_json", "message": f"the body is not JSON: {message}"}) from None
