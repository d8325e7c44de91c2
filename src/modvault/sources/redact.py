"""Upstream URLs as they may appear in logs, metrics and error messages: never with credentials."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """A URL fit for logs and error messages: credentials and query removed."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


# Every match of these patterns holds a word of observability/audit.py's _SUSPECT_WORDS (the filter
# in front of the mask): a new pattern needs its word there, and in the test that checks the two
# agree (tests/unit/test_access_units.py, _MASK_WORDS).

# An Authorization (or Proxy-Authorization) header as text, quoted or not: everything after the
# name and separator to the end of the line is the credential (schemes like Digest carry commas).
_AUTH_HEADER = re.compile(r"(?i)(?<![a-z0-9_])((?:proxy-)?authorization)([\"']?\s*[:=]\s*).*")
# A credential after its scheme word, wherever it appears (JSON echoes, "Basic xyz" in prose).
_AUTH_SCHEME = re.compile(
    r"(?i)(?<![a-z0-9_])(basic|bearer|token|digest|negotiate)(\s+)[A-Za-z0-9._~+/=\-]{6,}")
# URL userinfo: everything between "scheme://" and the last "@" before the path.
_URL_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.\-]{0,30}://)[^/\s@]*(?:@[^/\s@]*)*@")
# key=value secrets in query strings and forms.
_SECRET_PARAM = re.compile(
    r"(?i)(?<![a-z0-9_])(password|passwd|pwd|pass|secret|client_secret|token|access_token|refresh_token|"
    r"id_token|api[_-]?key|apikey|auth|sig|signature|x-amz-signature|x-amz-credential)"
    r"([\"']?\s*[=:]\s*[\"']?)[^&\s\"',;]+")
# A JSON Web Token: three base64url segments, the first two JSON objects ("eyJ" is '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")


def redact_text(text: str) -> str:
    """``text`` (an upstream's error line, a log message) with credentials replaced by ``***``:
    Authorization headers, scheme-tagged tokens, URL userinfo, secret query parameters, JWTs.
    Pure and idempotent; errs on the side of removing too much."""
    text = _AUTH_HEADER.sub(r"\1\2***", text)
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _JWT.sub("***", text)
    text = _AUTH_SCHEME.sub(r"\1\2***", text)
    return _SECRET_PARAM.sub(r"\1\2***", text)
