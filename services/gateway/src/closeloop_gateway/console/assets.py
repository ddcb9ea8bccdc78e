"""The console's static files: read once, served from memory under a content-hashed URL.

``/console/static/<hash>/<name>``: the hash changes whenever the file does, so browsers
may keep a file for a year (``immutable``) and still never run a stale script after an
upgrade. A request with an old hash gets the current file without caching.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC_DIR = Path(__file__).parent / "static"
YEAR_S = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    media_type: str
    version: str


class Assets:
    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self._files: dict[str, Asset] = {}
        for path in sorted(directory.iterdir()):
            if path.is_file():
                content = path.read_bytes()
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if media_type.startswith("text/") or media_type.endswith("javascript"):
                    media_type += "; charset=utf-8"
                version = hashlib.sha256(content).hexdigest()[:12]
                self._files[path.name] = Asset(content, media_type, version)

    def url(self, name: str) -> str:
        return f"/console/static/{self._files[name].version}/{name}"

    async def serve(self, request: Request) -> Response:
        asset = self._files.get(request.path_params["name"])
        if asset is None:
            return Response(status_code=404)
        current = request.path_params["version"] == asset.version
        cache = f"public, max-age={YEAR_S}, immutable" if current else "no-cache"
        return Response(
            asset.content,
            media_type=asset.media_type,
            headers={
                "cache-control": cache,
                "etag": f'"{asset.version}"',
                "x-content-type-options": "nosniff",
            },
        )
