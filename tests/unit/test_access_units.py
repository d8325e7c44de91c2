"""Pure and file-level parts of access control: roles, tokens, buckets, credentials, gate, audit."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.auth.identity import Identity
from modvault.auth.jwt import roles_from_claim
from modvault.auth.middleware import TokenBuckets, credential_of
from modvault.auth.policy import ALL_PRIVATE, AccessPolicy, parse_roles
from modvault.auth.tokens import TokenBook, TokenError, create_token, revoke_token
from modvault.config import ConfigError, load_settings
from modvault.errors import Forbidden, Unauthorized
from modvault.gate import ModuleGate, block_version, unblock_version
from modvault.observability.audit import AuditLog, mask
from modvault.storage.fs import FileStore


def ident(*roles: str, modules: str = "", anonymous: bool = False) -> Identity:
    return Identity("someone", roles, "token", modules, anonymous)


def test_builtin_roles_and_private_placeholder() -> None:
    policy = AccessPolicy(parse_roles(""), "corp.example,git.corp/*")
    dev, ci, admin = ident("dev"), ident("ci"), ident("admin")
    assert policy.allows(dev, "read", "github.com/x/y")
    assert policy.allows(dev, "publish", "corp.example/lib")
    assert policy.allows(dev, "publish", "git.corp/team/lib")
    assert not policy.allows(dev, "publish", "github.com/x/y")
    assert not policy.allows(ci, "publish", "corp.example/lib")
    assert not policy.allows(dev, "block", "corp.example/lib")
    assert policy.allows(admin, "block", "github.com/x/y") and policy.allows(admin, "metrics", "")
    assert not policy.allows(ident(), "read", "github.com/x/y")
    assert not policy.allows(ident("no-such-role"), "read", "github.com/x/y")
    assert not policy.allows(dev, "metrics", "")


def test_custom_roles_token_restriction_and_all_private() -> None:
    roles = parse_roles(json.dumps({
        "public": {"read": ["github.com/*", "golang.org/*"]},
        "team": {"read": "corp.example/team/*", "publish": ["corp.example/team/*"],
                 "rate": 5, "allow_cidrs": ["10.0.0.0/8"]},
        "dev": {"read": ["corp.example"]},  # replaces the built-in
    }))
    policy = AccessPolicy(roles, "corp.example")
    assert policy.allows(ident("public"), "read", "github.com/a/b")
    assert not policy.allows(ident("public"), "read", "corp.example/x")
    assert not policy.allows(ident("dev"), "read", "github.com/a/b")
    team = ident("team")
    assert policy.allows(team, "publish", "corp.example/team/lib")
    assert not policy.allows(team, "publish", "corp.example/other")
    assert policy.rate_of(team) == (5.0, 5.0)
    assert roles["team"].usable_from("10.1.1.1") and not roles["team"].usable_from("11.1.1.1")
    # A token narrowed to some modules cannot reach beyond them, whatever its role says.
    narrowed = ident("admin", modules="corp.example/team/*")
    assert policy.allows(narrowed, "read", "corp.example/team/x")
    assert not policy.allows(narrowed, "read", "corp.example/other")
    # The private sumdb's tiles reveal every private module: read on every private pattern.
    assert policy.allows(ident("dev"), "read", ALL_PRIVATE)
    assert not policy.allows(team, "read", ALL_PRIVATE)
    assert not policy.allows(narrowed, "read", ALL_PRIVATE)
    assert policy.allows(team, "read", "")


@pytest.mark.parametrize("bad", [
    '{"r": {"read": 3}}', '{"r": {"write": ["*"]}}', '{"r": {"rate": -1}}',
    '{"r": {"allow_cidrs": ["nope"]}}', '{"r": []}', "not json"])
def test_bad_roles_are_config_errors(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="roles"):
        load_settings(environ={"MODVAULT_ROLES": bad, "MODVAULT_DATA_DIR": str(tmp_path)})


def test_config_file_roles_table_and_auth_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('auth = "on"\nanonymous_role = "pub"\n[roles.pub]\nread = ["github.com/*"]\n')
    s = load_settings(config_file=str(cfg), environ={"MODVAULT_DATA_DIR": str(tmp_path)})
    assert s.auth == "on" and "pub" in parse_roles(s.roles)
    with pytest.raises(ConfigError, match="anonymous_role"):
        load_settings(environ={"MODVAULT_ANONYMOUS_ROLE": "ghost"})
    with pytest.raises(ConfigError, match="auth"):
        load_settings(flags={"auth": "maybe"})
    with pytest.raises(ConfigError, match="jwt_key_files"):
        load_settings(flags={"jwt_key_files": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="allow_cidrs"):
        load_settings(flags={"allow_cidrs": "10.0.0.0/33"})


def test_credentials_from_basic_and_bearer() -> None:
    basic = base64.b64encode(b"anything:mvt_secret").decode()
    assert credential_of(f"Basic {basic}") == "mvt_secret"
    assert credential_of("Bearer abc.def") == "abc.def"
    assert credential_of("bearer   tok ") == "tok"
    for bad in ("Basic !!!", "Basic " + base64.b64encode(b"nopassword").decode(), "Digest x",
                "Bearer ", "x" * 20000):
        with pytest.raises(Unauthorized):
            credential_of(bad)


def test_roles_claim_array_or_scope() -> None:
    assert roles_from_claim(["dev", "ci"]) == ("dev", "ci")
    assert roles_from_claim("goproxy:read goproxy:dev dev") == ("read", "dev")
    assert roles_from_claim(42) == ()


def test_token_bucket_rate_and_bounded_memory() -> None:
    b = TokenBuckets(max_entries=100)
    now = 1000.0
    assert [b.take("a", 2.0, 3.0, now) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = b.take("a", 2.0, 3.0, now)
    assert 0.4 < wait <= 0.5
    assert b.take("a", 2.0, 3.0, now + 0.5) == 0.0  # refilled one token
    for i in range(1000):
        b.take(f"k{i}", 1.0, 1.0, now)
    assert len(b._buckets) <= 100


def test_tokens_hash_only_expiry_and_revocation(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    token, rec = create_token(store, tmp_path, "ci-bot", "ci", modules="corp.example/*")
    stored = (tmp_path / ".modvault" / "auth" / "tokens.json").read_text()
    assert token not in stored and rec.sha256 in stored
    book = TokenBook(store)
    who = asyncio.run(book.verify(token))
    assert who is not None and who.name == "ci-bot" and who.roles == ("ci",)
    assert who.modules == "corp.example/*"
    assert asyncio.run(book.verify(token + "x")) is None and asyncio.run(book.verify("")) is None
    with pytest.raises(TokenError):
        create_token(store, tmp_path, "ci-bot", "ci")
    with pytest.raises(TokenError):
        create_token(store, tmp_path, "bad name!", "ci")
    short, _ = create_token(store, tmp_path, "short", "ci", expires_in=0.0)
    revoke_token(store, tmp_path, "ci-bot")
    book._checked = 0.0  # the server rereads at most once a second
    assert asyncio.run(book.verify(token)) is None
    assert asyncio.run(book.verify(short)) is None  # expired


def test_a_burst_of_first_requests_all_see_the_token_record(tmp_path: Path) -> None:
    # Many requests arriving together at a fresh server (or just after `token create`): the ones
    # that come while one of them reads the record wait for that read instead of answering 401.
    store = FileStore(tmp_path)
    token, _ = create_token(store, tmp_path, "ci-bot", "ci")
    book = TokenBook(store)

    async def burst() -> list[object]:
        return list(await asyncio.gather(*(book.verify(token) for _ in range(50))))

    assert all(who is not None for who in asyncio.run(burst()))


def test_gate_blocks_and_patterns(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    gate = ModuleGate(store, deny="evil.example", allow="")
    with pytest.raises(Forbidden, match="deny"):
        gate.check("evil.example/x")
    gate.check("good.example/x", "v1.0.0")
    block_version(store, tmp_path, "good.example/x", "v1.0.0", "CVE-1 bad", "ops")
    asyncio.run(gate.refresh())
    with pytest.raises(Forbidden, match="CVE-1 bad"):
        gate.check("good.example/x", "v1.0.0")
    gate.check("good.example/x", "v1.0.1")
    assert gate.blocked_versions("good.example/x") == {"v1.0.0"}
    unblock_version(store, tmp_path, "good.example/x", "v1.0.0")
    asyncio.run(gate.refresh())
    gate.check("good.example/x", "v1.0.0")
    allow_only = ModuleGate(store, allow="corp.example")
    with pytest.raises(Forbidden, match="allow"):
        allow_only.check("github.com/a/b")


def test_audit_rotation_keeps_n_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=2048, keep=3)
    for i in range(200):
        log.record("authn.failure", result="denied", identity=f"user{i}", reason="x" * 40)
    files = log.files()
    assert len(files) == 4  # current + 3 kept
    assert all(p.stat().st_size <= 2048 for p in files)
    lines = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    assert {e["event"] for e in lines} == {"authn.failure"}
    assert lines[0]["identity"] != "user0"  # the oldest were rotated away
    assert all({"ts", "identity", "role", "client", "request_id", "action", "target",
                "result"} <= set(e) for e in lines)


TOKEN_CHARS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                      min_size=20, max_size=60)


@given(TOKEN_CHARS, st.sampled_from(["", "error: ", '{"msg":"', "GET /x ", "a, "]))
def test_mask_removes_tokens_jwts_and_url_passwords(secret: str, around: str) -> None:
    for planted in (f"mvt_{secret}", f"Bearer {secret}", f"https://u:{secret}@h/x",
                    f"eyJ{secret}.eyJ{secret}.{secret}", f"Authorization: Basic {secret}"):
        out = mask(around + planted + '" ' + around)
        assert secret not in out, (planted, out)


# Texts that the mask's patterns may act on: every keyword of sources/redact.py and audit.py (mixed
# case; some with letters that match ASCII ones case-insensitively: long s, Kelvin sign, dotted and
# dotless i), each followed by what makes it a credential (a separator and a value), among other
# pieces, so that generated texts often hold a credential and often do not.
_MASK_WORDS = st.sampled_from([
    "pwd", "PassWord", "passwd", "pa\u017fs", "secret", "Client_Secret", "token", "ACCESS_TOKEN",
    "api-key", "apikey", "api\u212aey", "auth", "Authorization", "proxy-authorization", "sig",
    "X-Amz-Signature", "x-amz-credential", "Basic", "bearer", "Digest", "d\u0130gest",
    "negot\u0131ate", "mvt_", "eyJ", "https://u:p@h/x"])
_MASK_UNITS = st.one_of(
    st.tuples(_MASK_WORDS, st.sampled_from(["", "=", ": ", " ", "='", '": "']),
              st.sampled_from(["", "abcdefgh", "hunter22", "AKIA0123456789", "x.eyJa.b"])
              ).map("".join),
    st.sampled_from([" ", "/", "&", ",", "@", "://", "a", "\u00df", "GET /x "]))


@given(st.lists(_MASK_UNITS, max_size=6).map("".join))
def test_what_suspect_passes_the_mask_leaves_alone(text: str) -> None:
    """suspect() is the filter in front of the mask (the access log, the mask itself): a text
    it passes must be one the patterns would leave unchanged."""
    from modvault.observability.audit import _mask_always, suspect

    if not suspect(text):
        assert _mask_always(text) == text


def test_remembered_masks_stay_masked_and_bounded() -> None:
    """mask() remembers short suspect texts: each answer is still its own text masked, a long
    text is masked too, and a flood of distinct texts keeps the memory bounded."""
    from modvault.observability import audit

    for i in range(3 * audit._MEMO_TEXTS):
        text = f"http://u:pw{i:06d}@h{i}/x: token secret{i:06d}xyz not found"
        for _ in range(2):  # the second time from memory
            out = mask(text)
            assert out == f"http://***@h{i}/x: token *** not found", out
        assert audit._mask_remembered.cache_info().currsize <= audit._MEMO_TEXTS
    long = "x" * audit._MEMO_CHARS + " Bearer abcdefghijkl"
    seen = audit._mask_remembered.cache_info()
    assert mask(long) == "x" * audit._MEMO_CHARS + " Bearer ***"
    assert audit._mask_remembered.cache_info() == seen  # neither looked up nor remembered
    assert mask("x-amz-credential=AKIA0123456789") == "x-amz-credential=***"
    assert mask("GET /example.com/m/@v/list 404") == "GET /example.com/m/@v/list 404"


def test_mask_is_cheap_enough_for_log_batches() -> None:
    line = '{"ts":1,"path":"/github.com/acme/hello/@v/v1.0.0.info","status":200}\n' * 1000
    t = time.process_time()
    assert mask(line) == line
    assert time.process_time() - t < 5  # generous: only catastrophic backtracking would fail


def test_cli_admin_actions_reach_the_audit_log(tmp_path: Path) -> None:
    from modvault.config import Settings
    from modvault.ops.store_cli import audit

    audit(Settings(data_dir=str(tmp_path)), "rm", "example.com/m@v1.0.0", files=3)
    lines = (tmp_path / ".modvault" / "audit" / "audit.log").read_text().splitlines()
    doc = json.loads(lines[-1])
    assert doc["event"] == "rm" and doc["action"] == "modvault rm"
    assert doc["target"] == "example.com/m@v1.0.0" and doc["files"] == 3
    assert doc["identity"].startswith("cli:")


_MODS = ["a.example/x", "a.example/x/y", "b.example/z", "c.example"]
_VERS = ["v1.0.0", "v1.1.0", "v2.0.0+incompatible"]
# What each sampled pattern list covers (GOPRIVATE syntax: leading path elements, globs per element).
_DENIED = {"": set(), "a.example": set(_MODS[:2]), "b.example/z,c.example": set(_MODS[2:])}
_ALLOWED = {"": set(_MODS), "a.example": set(_MODS[:2]), "*.example": set(_MODS)}


@given(blocked=st.sets(st.tuples(st.sampled_from(_MODS), st.sampled_from(_VERS)), max_size=5),
       deny=st.sampled_from(sorted(_DENIED)), allow=st.sampled_from(sorted(_ALLOWED)),
       module=st.sampled_from(_MODS), version=st.sampled_from(_VERS))
def test_gate_refusal_and_check_refuse_what_the_lists_and_blocks_say(
        blocked: set[tuple[str, str]], deny: str, allow: str, module: str, version: str) -> None:
    """The prebuilt answers ask ``refusal``; the general path calls ``check``: both refuse
    exactly the denied, the not-allowed and the blocked, with the reason."""
    from modvault.gate import Block

    gate = ModuleGate(allow=allow, deny=deny)
    gate.blocks = {(m, v): Block(m, v, "r", "t", 0.0) for m, v in blocked}
    gate.blocked_modules = {m for m, _ in blocked}
    if module in _DENIED[deny]:
        want = "refused by the proxy's deny list"
    elif module not in _ALLOWED[allow]:
        want = "not in the proxy's allow list"
    elif (module, version) in blocked:
        want = f"{module}@{version} is blocked: r"
    else:
        want = ""
    why = gate.refusal(module, version)
    assert (want in why) if want else why == "", (why, want)
    try:
        gate.check(module, version)
        raised = ""
    except Forbidden as exc:
        raised = exc.message
    assert raised == why
