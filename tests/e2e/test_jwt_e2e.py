"""JWT authentication against a test identity provider made here: keys generated in the test, a JWKS
served on 127.0.0.1, tokens signed with PyJWT, and a real modvault with auth on asking for them."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.modvault_proc import ModvaultProcess
from tests.support.probes import rss_mb

pytestmark = pytest.mark.e2e

ISS = "https://idp.test"
AUD = "modvault"
MODULE_PATH = "/corp.example/lib/@v/v1.0.0.info"


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key))
    doc.update(kid=kid, use="sig", alg=alg)
    return doc


class IdentityProvider:
    """Serves /jwks.json from whatever keys it currently publishes; counts fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.accept_encoding: str | None = None  # of the last fetch
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.fetches += 1
                idp.accept_encoding = self.headers.get("accept-encoding")
                body = json.dumps({"keys": idp.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    doc = {"iss": ISS, "aud": AUD, "sub": "alice@corp", "iat": now, "nbf": now - 5,
           "exp": now + 600, "roles": ["ci"]}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture(scope="module")
def idp_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IdentityProvider,
                                                                            ModvaultProcess,
                                                                            dict[str, Any]]]:
    root = tmp_path_factory.mktemp("jwt")
    keys: dict[str, Any] = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    idp = IdentityProvider()
    idp.keys = [_jwk(keys["rsa"].public_key(), "k-rsa", "RS256"),
                _jwk(keys["ec"].public_key(), "k-ec", "ES256"),
                _jwk(keys["ed"].public_key(), "k-ed", "EdDSA")]
    secret = root / "hs.secret"
    secret.write_bytes(b"shared-secret-for-hs256-0123456789abcdef")
    keys["hs"] = secret.read_bytes()
    pem = root / "rsa.pub.pem"
    pem.write_bytes(keys["rsa"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    keys["rsa_pem"] = pem.read_bytes()
    mv = ModvaultProcess(root / "data", "off", "--offline", "--auth", "on",
                         "--jwt-jwks-url", idp.url, "--jwt-key-files", str(secret),
                         "--jwt-issuer", ISS, "--jwt-audience", AUD)
    yield idp, mv, keys
    mv.stop()
    idp.stop()


def _status(mv: ModvaultProcess, token: str) -> httpx.Response:
    return httpx.get(mv.url + MODULE_PATH, headers={"authorization": f"Bearer {token}"}, timeout=30)


def test_valid_tokens_of_every_algorithm(idp_setup: Any) -> None:
    idp, mv, keys = idp_setup
    for key, kid, alg in (("rsa", "k-rsa", "RS256"), ("ec", "k-ec", "ES256"),
                          ("ed", "k-ed", "EdDSA")):
        tok = jwt.encode(claims(), keys[key], algorithm=alg, headers={"kid": kid})
        r = _status(mv, tok)
        # Authenticated and authorized (ci reads everything): the offline store has nothing -> 404.
        assert r.status_code == 404, (alg, r.status_code, r.text)
        assert r.headers.get("www-authenticate") is None
    # Asked for as is: read_bounded inflates gzip and deflate only, never br.
    assert idp.fetches >= 1 and idp.accept_encoding == "identity"
    hs = jwt.encode(claims(), keys["hs"], algorithm="HS256")
    assert _status(mv, hs).status_code == 404
    # Roles from a space-separated scope claim are read the same way (roles_claim=roles here, so
    # a token with only a scope has no role: 403).
    tok = jwt.encode(claims(roles=None, scope="goproxy:ci"), keys["rsa"], algorithm="RS256",
                     headers={"kid": "k-rsa"})
    assert _status(mv, tok).status_code == 403
    # Basic with the JWT as password works too (.netrc).
    tok = jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "k-rsa"})
    r = httpx.get(mv.url + MODULE_PATH, auth=("x", tok), timeout=30)
    assert r.status_code == 404


@pytest.mark.parametrize("case", ["expired", "wrong_aud", "wrong_iss", "unknown_kid", "alg_none",
                                  "hs_rs_confusion", "not_yet_valid", "no_exp", "bad_signature"])
def test_bad_tokens_are_401(idp_setup: Any, case: str) -> None:
    _idp, mv, keys = idp_setup
    now = int(time.time())
    rsa_key, hdr = keys["rsa"], {"kid": "k-rsa"}
    if case == "expired":
        tok = jwt.encode(claims(exp=now - 3600), rsa_key, algorithm="RS256", headers=hdr)
    elif case == "wrong_aud":
        tok = jwt.encode(claims(aud="someone-else"), rsa_key, algorithm="RS256", headers=hdr)
    elif case == "wrong_iss":
        tok = jwt.encode(claims(iss="https://evil.test"), rsa_key, algorithm="RS256", headers=hdr)
    elif case == "unknown_kid":
        tok = jwt.encode(claims(), keys["rsa2"], algorithm="RS256", headers={"kid": "k-nobody"})
    elif case == "alg_none":
        head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"k-rsa"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
        tok = (head + b"." + body + b".").decode()
    elif case == "hs_rs_confusion":
        # HS256 "signed" with the RSA public key's PEM as the HMAC secret, naming the RSA kid.
        import hashlib
        import hmac
        head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"k-rsa"}').rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
        sig = hmac.new(keys["rsa_pem"], head + b"." + body, hashlib.sha256).digest()
        tok = (head + b"." + body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
    elif case == "not_yet_valid":
        tok = jwt.encode(claims(nbf=now + 3600), rsa_key, algorithm="RS256", headers=hdr)
    elif case == "no_exp":
        tok = jwt.encode(claims(exp=None), rsa_key, algorithm="RS256", headers=hdr)
    else:
        tok = jwt.encode(claims(), keys["rsa2"], algorithm="RS256", headers=hdr)
    r = _status(mv, tok)
    assert r.status_code == 401, (case, r.status_code, r.text)
    assert r.headers["www-authenticate"] == 'Basic realm="modvault"'
    assert tok not in r.text


def test_key_rotation_without_restart(idp_setup: Any) -> None:
    idp, mv, _keys = idp_setup
    new_key = ec.generate_private_key(ec.SECP256R1())
    tok = jwt.encode(claims(), new_key, algorithm="ES256", headers={"kid": "k-new"})
    assert _status(mv, tok).status_code == 401  # not published yet
    idp.keys = [*idp.keys, _jwk(new_key.public_key(), "k-new", "ES256")]
    time.sleep(1.2)  # unknown kids trigger a refetch at most once a second
    assert _status(mv, tok).status_code == 404
    # The old key is withdrawn later: tokens signed by it keep working until the cache is
    # refreshed; a token naming an unknown kid never forces more than one fetch a second.
    before, started = idp.fetches, time.monotonic()
    for _ in range(20):
        bogus = jwt.encode(claims(), new_key, algorithm="ES256", headers={"kid": "k-bogus"})
        assert _status(mv, bogus).status_code == 401
    elapsed = time.monotonic() - started
    # At most one refetch per started second (20 requests take well under a second on an idle
    # machine, several on a loaded one); without the limit every request would refetch.
    assert idp.fetches - before <= math.ceil(elapsed) + 1 < 20


def test_jwks_unreachable_is_503_not_500(tmp_path: Path) -> None:
    mv = ModvaultProcess(tmp_path / "data", "off", "--offline", "--auth", "on",
                         "--jwt-jwks-url", "http://127.0.0.1:9/jwks.json")
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tok = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k"})
        r = _status(mv, tok)
        assert r.status_code == 503 and "identity provider" in r.text
    finally:
        mv.stop()


def test_huge_jwks_document_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    # Before: the whole answer was read into memory, then its size checked.
    sent = [0]

    class Endless(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            pad = b" " * (1 << 20)
            try:
                for _ in range(256):
                    self.wfile.write(pad)
                    sent[0] += len(pad)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    mv = ModvaultProcess(tmp_path / "data", "off", "--offline", "--auth", "on", "--jwt-jwks-url",
                         f"http://127.0.0.1:{server.server_address[1]}/jwks.json")
    try:
        before = rss_mb(mv.proc.pid)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        r = _status(mv, jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k"}))
        assert r.status_code == 503 and "identity provider" in r.text, r.text
        assert rss_mb(mv.proc.pid) - before < 40
        assert sent[0] < 64 << 20  # the connection was dropped early, not read to the end
        assert "JWKS document: answer larger than 1048576 bytes" in mv.output()
    finally:
        mv.stop()
        server.shutdown()
        server.server_close()


def test_a_jwks_answer_that_never_ends_its_head_is_refused(tmp_path: Path) -> None:
    # Informational heads without end: the upstreams' client refuses the answer after 1 MiB of
    # them (before: the fetch, and every JWT request behind its lock, waited without end).
    sock = socket.create_server(("127.0.0.1", 0))

    def flood() -> None:
        with contextlib.suppress(OSError):
            conn, _ = sock.accept()
            with conn:
                conn.recv(65536)
                heads = b"HTTP/1.1 100 Continue\r\n\r\n" * 4000
                while True:
                    conn.sendall(heads)

    threading.Thread(target=flood, daemon=True).start()
    mv = ModvaultProcess(tmp_path / "data", "off", "--offline", "--auth", "on", "--jwt-jwks-url",
                         f"http://127.0.0.1:{sock.getsockname()[1]}/jwks.json")
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        started = time.monotonic()
        r = _status(mv, jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k"}))
        assert r.status_code == 503 and "identity provider" in r.text, r.text
        assert time.monotonic() - started < 25  # not the 30 s deadline: the head bound
        assert "no final answer head within the first 1048576 bytes" in mv.output()
    finally:
        mv.stop()
        sock.close()
