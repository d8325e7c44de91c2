"""Front-end mode: nginx sends the bytes of stored zips, modvault keeps every decision.

With ``accel_redirect`` set (an internal nginx location serving the data directory, see
deploy/nginx/modvault-accel.conf), a GET of a stored zip is answered with an empty 200 carrying
``X-Accel-Redirect: <location><store key>`` and the headers modvault owns (strong ETag,
Cache-Control, Cache-Status); nginx then serves the file itself, Range requests included. Everything
before that answer is unchanged: routing, authentication and authorization, blocks, fetching and
verifying on a miss, metrics, the access log and the access journal. Conditional requests are still
answered by modvault (it knows the strong ETag), and so are requests with ``If-Range``, whose
validator nginx cannot check against modvault's ETag.

Store keys are the GOPROXY URL space, escaped (lower case, ``!`` for capitals) and made of URI-safe
characters, so a key is a path under the location as it is; a path that is not (it never happens
with the fs store) is answered by modvault itself.
"""

from __future__ import annotations

import re

Headers = list[tuple[str, str]]

_SAFE_KEY = re.compile(r"[a-z0-9._~!+\-]+(/[a-z0-9._~!+@\-]+)*")


class AccelRedirect:
    def __init__(self, location: str, data_dir: str) -> None:
        self.location = location
        self.root = data_dir.rstrip("/") + "/"

    def target(self, path: str) -> str | None:
        """The internal URI for a stored file, or None when it cannot be redirected."""
        if not path.startswith(self.root):
            return None
        key = path[len(self.root):]
        if not _SAFE_KEY.fullmatch(key) or "/../" in f"/{key}/" or "/./" in f"/{key}/":
            return None
        return self.location + key

    @staticmethod
    def headers(target: str, plain: Headers) -> Headers:
        """The redirect answer: the plain answer's headers without Content-Length (nginx sets
        its own), plus ``X-Accel-Redirect``."""
        return [("x-accel-redirect", target),
                *((k, v) for k, v in plain if k != "content-length")]
