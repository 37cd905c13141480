"""Reading a request body the way every write route must: bounded before it is read whole, parsed as
JSON with a clear 400, so a huge, chunked or malformed body never hangs or kills a worker."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request


async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON: 413 past `max_bytes` (declared or streamed), 400 when it is not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, {"reason": "too_large", "message": f"the body is {int(declared):,} bytes, "
                                                                    f"at most {max_bytes:,} allowed"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, {"reason": "too_large", "message": f"the body is over {max_bytes:,} bytes"})
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        message = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise HTTPException(400, {"reason": "not_json", "message": f"the body is not JSON: {message}"}) from None
