"""JWTs from the company's identity provider, verified with PyJWT (no JOSE code of our own).

Keys come from a JWKS URL (cached for ``JWKS_TTL``; an unknown ``kid`` triggers a refetch, at most once
per ``JWKS_MIN_REFRESH`` seconds, which is how key rotation is picked up) and/or key files: a PEM public
key (RSA, EC, Ed25519), a JWKS JSON document, or anything else as an HS256 shared secret.

Algorithm confusion is closed by binding every key to the algorithms of its own type: an RSA key only
verifies RS*/PS*, an EC key ES*, an OKP key EdDSA, a shared secret HS*. A token's ``alg`` must be one
of those for the key its ``kid`` names; ``none`` never is. ``exp`` is required; ``exp``, ``nbf``,
``iss`` and ``aud`` are checked with ``LEEWAY`` seconds of clock skew.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from modvault.auth.identity import Identity
from modvault.errors import InvalidContent, ModvaultError
from modvault.sources.redact import redact_url
from modvault.sources.upstream import UpstreamLimits, make_client, read_bounded

LOG = logging.getLogger("modvault.auth")

LEEWAY = 60.0
JWKS_TTL = 300.0
JWKS_MIN_REFRESH = 1.0
MAX_JWKS_BYTES = 1024 * 1024
JWKS_DEADLINE = 30.0  # seconds for a whole JWKS fetch

ALGORITHMS = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
    "oct": ("HS256", "HS384", "HS512"),
}


class InvalidToken(Exception):
    """Why a JWT was refused (a short reason, never the token)."""


class IdentityProviderUnavailable(ModvaultError):
    status = 503


@dataclass(frozen=True, slots=True)
class VerifyKey:
    kid: str | None
    key: Any
    algorithms: tuple[str, ...]


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def _key_from_jwk(doc: dict[str, Any]) -> VerifyKey | None:
    try:
        pyjwk = jwt.PyJWK(doc)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None
    algs = ALGORITHMS.get(str(doc.get("kty")), ())
    if doc.get("alg"):
        algs = tuple(a for a in algs if a == doc["alg"])
    if not algs or doc.get("use", "sig") != "sig":
        return None
    return VerifyKey(doc.get("kid"), pyjwk.key, algs)


def keys_from_jwks(doc: Any) -> list[VerifyKey]:
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    return [k for k in (_key_from_jwk(d) for d in doc["keys"] if isinstance(d, dict)) if k]


def load_key_file(path: str) -> list[VerifyKey]:
    """A PEM public key, a JWKS JSON file, or an HS256 shared secret."""
    with open(path, "rb") as fh:
        data = fh.read()
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = load_pem_public_key(text)
        if isinstance(key, rsa.RSAPublicKey):
            algs = ALGORITHMS["RSA"]
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algs = ALGORITHMS["EC"]
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            algs = ALGORITHMS["OKP"]
        else:
            raise ValueError(f"{path}: unsupported public key type")
        return [VerifyKey(None, key, algs)]
    if text.startswith(b"{"):
        return keys_from_jwks(json.loads(text))
    if len(text) < 32:
        raise ValueError(f"{path}: an HS256 shared secret must be at least 32 bytes")
    return [VerifyKey(None, text, ALGORITHMS["oct"])]


def roles_from_claim(value: Any) -> tuple[str, ...]:
    """``["dev", "ci"]`` or ``"goproxy:dev goproxy:ci"``: an optional ``prefix:`` is dropped."""
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list):
        items = [v for v in value if isinstance(v, str)]
    else:
        return ()
    return tuple(dict.fromkeys(i.rsplit(":", 1)[-1] for i in items if i))


def jwks_client(ca_file: str = "") -> httpx.AsyncClient:
    """The client the JWKS document is fetched with: the upstreams' (paced reads, a bounded
    answer head), trusting ``ca_file`` beside the default roots."""
    return make_client(UpstreamLimits(connect_timeout=5.0, read_timeout=10.0, ca_file=ca_file))


class JwtVerifier:
    def __init__(self, *, jwks_url: str = "", key_files: list[str] | None = None, issuer: str = "",
                 audience: str = "", roles_claim: str = "roles",
                 client: httpx.AsyncClient | None = None) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.file_keys: list[VerifyKey] = []
        for path in key_files or []:
            self.file_keys.extend(load_key_file(path))
        self.client = client
        self._jwks_keys: list[VerifyKey] = []
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def _fetch_jwks(self) -> None:
        if self.client is None:  # build_jwt passes one; this is for direct use
            self.client = jwks_client()
        try:
            # Streamed and bounded: the document is read up to MAX_JWKS_BYTES, never whole first,
            # within JWKS_DEADLINE in all (a provider that trickles would hold every JWT request
            # waiting on the lock). Identity asked for: read_bounded inflates gzip and deflate only
            # (an httpx with brotli installed would offer br).
            async with asyncio.timeout(JWKS_DEADLINE), \
                    self.client.stream("GET", self.jwks_url,
                                       headers={"Accept-Encoding": "identity"}) as resp:
                if resp.status_code != 200:
                    raise ValueError(f"HTTP {resp.status_code}")
                body = await read_bounded(resp, MAX_JWKS_BYTES, what="JWKS document")
            keys = keys_from_jwks(json.loads(body))
        except TimeoutError:
            self._failed(f"no whole answer within {JWKS_DEADLINE:.0f} s")
            return
        except (httpx.HTTPError, ValueError, InvalidContent) as exc:
            self._failed(str(exc))
            return
        self._jwks_keys = keys
        self._fetched = time.monotonic()

    def _failed(self, why: str) -> None:
        """A failed JWKS fetch: the keys known so far stay; with none, IdentityProviderUnavailable."""
        self._fetched = time.monotonic()  # do not hammer a failing provider
        LOG.warning("JWKS fetch from %s failed: %s", redact_url(self.jwks_url), why[:200])
        if not self._jwks_keys:
            raise IdentityProviderUnavailable(
                f"cannot fetch the identity provider's keys from {redact_url(self.jwks_url)}"
            ) from None

    async def _keys(self, kid: str | None) -> list[VerifyKey]:
        if not self.jwks_url:
            return self.file_keys
        age = time.monotonic() - self._fetched
        known = any(k.kid == kid for k in self._jwks_keys) if kid else bool(self._jwks_keys)
        if not self._fetched or age > JWKS_TTL or (not known and age > JWKS_MIN_REFRESH):
            async with self._lock:
                age = time.monotonic() - self._fetched
                known = any(k.kid == kid for k in self._jwks_keys) if kid else bool(self._jwks_keys)
                if not self._fetched or age > JWKS_TTL or (not known and age > JWKS_MIN_REFRESH):
                    await self._fetch_jwks()
        return self.file_keys + self._jwks_keys

    async def verify(self, token: str) -> Identity:
        """The identity a valid token names; InvalidToken with a short reason otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed JWT") from None
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise InvalidToken("JWT algorithm not allowed")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed JWT kid")
        keys = await self._keys(kid)
        candidates = [k for k in keys if (kid is None or k.kid is None or k.kid == kid)
                      and alg in k.algorithms]
        if kid is not None and not any(k.kid == kid for k in keys) and \
                not any(k.kid is None for k in candidates):
            raise InvalidToken("JWT signed by an unknown key (kid)")
        if not candidates:
            raise InvalidToken(f"JWT algorithm {alg[:10]} not allowed for its key")
        claims: dict[str, Any] | None = None
        last = "invalid JWT signature"
        for key in candidates:
            try:
                claims = jwt.decode(
                    token, key.key, algorithms=[alg],
                    audience=self.audience or None, issuer=self.issuer or None, leeway=LEEWAY,
                    options={"require": ["exp"], "verify_aud": bool(self.audience),
                             "verify_iss": bool(self.issuer)})
                break
            except jwt.ExpiredSignatureError:
                raise InvalidToken("JWT expired") from None
            except jwt.ImmatureSignatureError:
                raise InvalidToken("JWT not yet valid (nbf)") from None
            except jwt.InvalidAudienceError:
                raise InvalidToken("JWT audience (aud) not accepted") from None
            except jwt.InvalidIssuerError:
                raise InvalidToken("JWT issuer (iss) not accepted") from None
            except jwt.MissingRequiredClaimError as exc:
                raise InvalidToken(f"JWT lacks the {exc.claim} claim") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                last = "invalid JWT"
                continue
        if claims is None:
            raise InvalidToken(last)
        subject = claims.get("sub")
        name = subject if isinstance(subject, str) and subject else "jwt"
        return Identity(name[:200], roles_from_claim(claims.get(self.roles_claim)), "jwt")

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
