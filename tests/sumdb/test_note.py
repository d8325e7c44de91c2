"""Signed notes: the x/mod sumdb/note test vectors, properties, and a cross-check against Go."""

from __future__ import annotations

import base64
import contextlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.sumdb import note
from modvault.sumdb.note import (
    AmbiguousVerifier,
    InvalidKey,
    InvalidSignature,
    InvalidSigner,
    MalformedNote,
    MismatchedVerifier,
    Note,
    Signature,
    UnknownVerifier,
    UnverifiedNote,
    VerifierList,
)
from tests.support.gitrepos import GO, build_go_program

# Published in golang.org/x/mod/sumdb/note (package documentation and note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_B64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
ENOCH_B64 = "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
PETER_SIG = f"— PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"— EnochRoot {ENOCH_B64}\n"
PETER = Signature("PeterNeumann", 0xC74F20A3, PETER_B64)
ENOCH = Signature("EnochRoot", 0xAF0CFE78, ENOCH_B64)


@pytest.fixture(scope="module")
def peter() -> note.Ed25519Verifier:
    return note.new_verifier(PETER_VKEY)


@pytest.fixture(scope="module")
def enoch() -> note.Ed25519Verifier:
    return note.new_verifier(ENOCH_VKEY)


# --- keys ---------------------------------------------------------------------------------------


def test_new_verifier_published_key(peter: note.Ed25519Verifier) -> None:
    assert peter.name == "PeterNeumann"
    assert peter.key_hash == 0xC74F20A3
    assert peter.vkey == PETER_VKEY


def _manglings(key: str) -> list[str]:
    """Every proper substring, and every single-character increment (as x/mod's tests do)."""
    out = [key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)]
    out = [k for k in out if k != key]
    for i in range(len(key)):
        out.append(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])
    return out


def test_new_verifier_rejects_manglings() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(InvalidKey):
            note.new_verifier(bad)


@pytest.mark.parametrize(
    "bad",
    [
        # wrong key length, with adjusted key hash (x/mod note_test.go)
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        # unknown algorithm, with adjusted key hash
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    ],
)
def test_new_verifier_rejects(bad: str) -> None:
    with pytest.raises(InvalidKey):
        note.new_verifier(bad)


def test_key_errors_are_distinct() -> None:
    with pytest.raises(InvalidKey, match="invalid verifier hash"):
        note.new_verifier("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(InvalidKey, match="unknown verifier algorithm"):
        note.new_verifier("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(InvalidKey, match="malformed verifier id"):
        note.new_verifier("PeterNeumann+c74f20a3")


def test_new_signer_published_key() -> None:
    signer = note.new_signer(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_hash == 0xC74F20A3
    assert signer.verifier().vkey == PETER_VKEY
    assert "AYEKF" not in repr(signer)  # the secret stays out of logs


def test_new_signer_rejects_manglings() -> None:
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(InvalidKey):
            note.new_signer(bad)


def test_generate_key_is_self_consistent() -> None:
    skey, vkey = note.generate_key("EnochRoot")
    assert skey.startswith("PRIVATE+KEY+EnochRoot+")
    signer = note.new_signer(skey)
    verifier = note.new_verifier(vkey)
    assert (signer.name, signer.key_hash) == (verifier.name, verifier.key_hash)
    assert vkey.split("+")[1] == f"{verifier.key_hash:08x}"
    msg = bytearray(b"hi")
    sig = bytearray(signer.sign(bytes(msg)))
    assert verifier.verify(bytes(msg), bytes(sig))
    sig[0] ^= 1
    assert not verifier.verify(bytes(msg), bytes(sig))
    sig[0] ^= 1
    msg[0] ^= 1
    assert not verifier.verify(bytes(msg), bytes(sig))
    assert not verifier.verify(b"hi", bytes(sig[:63]))


def test_generate_key_rejects_bad_name() -> None:
    for name in ["", "a b", "a+b", "a\u00a0b", "a\u3000b"]:
        with pytest.raises(InvalidKey):
            note.generate_key(name)


def test_key_hash_definition() -> None:
    """First four bytes of SHA-256(name + "\\n" + 0x01 + pubkey)."""
    import hashlib

    pub = base64.b64decode(PETER_VKEY.split("+")[2])
    digest = hashlib.sha256(b"PeterNeumann\n" + pub).digest()
    assert note.key_hash("PeterNeumann", pub) == int.from_bytes(digest[:4], "big") == 0xC74F20A3


def test_new_ed25519_verifier_key() -> None:
    pub = base64.b64decode(PETER_VKEY.split("+")[2])[1:]
    assert note.new_ed25519_verifier_key("PeterNeumann", pub) == PETER_VKEY
    with pytest.raises(InvalidKey):
        note.new_ed25519_verifier_key("PeterNeumann", pub[:-1])


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("sum.golang.org", True),
        ("sum.example.com/private", True),
        ("日本", True),
        ("", False),
        ("a+b", False),
        ("a b", False),
        ("a\tb", False),
        ("a\u0085b", False),  # NEL: Unicode space in Go
        ("a\u2028b", False),
        ("a\x1cb", True),  # not a space to Go's unicode.IsSpace (Python's isspace says yes)
        ("a\ud800b", False),  # lone surrogate: not UTF-8
    ],
)
def test_is_valid_name(name: str, valid: bool) -> None:
    assert note.is_valid_name(name) is valid


def test_verifier_list(peter: note.Ed25519Verifier, enoch: note.Ed25519Verifier) -> None:
    known = VerifierList(peter, enoch, enoch)
    assert known.verifier("PeterNeumann", 0xC74F20A3) is peter
    with pytest.raises(UnknownVerifier, match=r"^unknown key PeterNeumann\+c74f20a4$"):
        known.verifier("PeterNeumann", 0xC74F20A4)
    with pytest.raises(UnknownVerifier, match=r"^unknown key PeterNeuman\+c74f20a3$"):
        known.verifier("PeterNeuman", 0xC74F20A3)
    with pytest.raises(AmbiguousVerifier, match=r"^ambiguous key EnochRoot\+af0cfe78$"):
        known.verifier("EnochRoot", 0xAF0CFE78)


# --- sign ---------------------------------------------------------------------------------------


def test_sign_published_vector() -> None:
    signer = note.new_signer(PETER_SKEY)
    want = (TEXT + "\n" + PETER_SIG).encode()
    assert note.sign(TEXT, signer) == want
    assert note.sign(TEXT, [signer]) == want
    # An existing signature by the same key is replaced, not repeated.
    old = Note(TEXT, sigs=(Signature("PeterNeumann", 0xC74F20A3, "BADSIGN="),))
    assert note.sign(old, signer) == want


def test_sign_rejects_bad_input() -> None:
    signer = note.new_signer(PETER_SKEY)
    with pytest.raises(MalformedNote, match=r"^malformed note$"):
        note.sign("abc", signer)  # no final newline
    with pytest.raises(MalformedNote):
        note.sign("a\x01b\n", signer)  # control character: could never be opened
    with pytest.raises(MalformedNote):
        note.sign(Note(TEXT, sigs=(Signature("a+b", 0, "ABCD"),)), [])
    with pytest.raises(MalformedNote):  # hash in base64 disagrees with the recorded hash
        note.sign(Note(TEXT, sigs=(Signature("PeterNeumann", 0xC74F20A3, "BADHASH="),)), [])


class _BadNameSigner:
    name = "bad name"
    key_hash = 0

    def sign(self, msg: bytes) -> bytes:
        return b"x" * 64


class _FailingSigner:
    name = "ok"
    key_hash = 0

    def sign(self, msg: bytes) -> bytes:
        raise RuntimeError("surprise!")


def test_sign_signer_errors() -> None:
    with pytest.raises(InvalidSigner, match=r"^invalid signer$"):
        note.sign(TEXT, _BadNameSigner())
    with pytest.raises(RuntimeError, match="surprise"):
        note.sign(TEXT, _FailingSigner())


# --- open ---------------------------------------------------------------------------------------


def test_open_one_verified_one_not(peter: note.Ed25519Verifier) -> None:
    n = note.open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), VerifierList(peter))
    assert n.text == TEXT
    assert n.sigs == (PETER,)
    assert n.unverified_sigs == (ENOCH,)


def test_open_both_verified(peter: note.Ed25519Verifier, enoch: note.Ed25519Verifier) -> None:
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    n = note.open_note(msg, VerifierList(peter, enoch))
    assert n.sigs == (PETER, ENOCH)
    assert n.unverified_sigs == ()
    assert note.open_note(msg, [peter, enoch]) == n  # a plain list of verifiers works too


def test_open_unverified() -> None:
    with pytest.raises(UnverifiedNote, match=r"^note has no verifiable signatures$") as exc:
        note.open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), VerifierList())
    assert exc.value.note.sigs == ()
    assert exc.value.note.unverified_sigs == (PETER, ENOCH)
    assert exc.value.note.text == TEXT


def test_open_duplicated_verifier(peter: note.Ed25519Verifier, enoch: note.Ed25519Verifier) -> None:
    with pytest.raises(AmbiguousVerifier):
        note.open_note((TEXT + "\n" + ENOCH_SIG).encode(), VerifierList(enoch, peter, enoch))
    # An ambiguous key that did not sign does not matter.
    n = note.open_note((TEXT + "\n" + PETER_SIG).encode(), VerifierList(enoch, peter, enoch))
    assert n.sigs == (PETER,)


def test_open_too_many_signatures(peter: note.Ed25519Verifier) -> None:
    for known in (VerifierList(peter), VerifierList()):
        with pytest.raises(MalformedNote):
            note.open_note((TEXT + "\n" + PETER_SIG * 101).encode(), known)
    # 100 is still fine (repeats of one key count once).
    n = note.open_note((TEXT + "\n" + PETER_SIG * 100).encode(), VerifierList(peter))
    assert n.sigs == (PETER,)


def test_open_invalid_signature(peter: note.Ed25519Verifier) -> None:
    bad = _insert_abcd(PETER_SIG)
    with pytest.raises(InvalidSignature, match=r"^invalid signature for key PeterNeumann\+c74f20a3$"):
        note.open_note((TEXT + "\n" + bad).encode(), VerifierList(peter))


def _insert_abcd(sig_line: str) -> str:
    """Insert "ABCD" at byte 60, as x/mod's tests do (the em dash is three bytes)."""
    raw = sig_line.encode()
    return (raw[:60] + b"ABCD" + raw[60:]).decode()


def test_open_drops_repeated_signatures(peter: note.Ed25519Verifier) -> None:
    enoch_abcd = _insert_abcd(ENOCH_SIG)
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    n = note.open_note(msg.encode(), VerifierList(peter))
    assert n.sigs == (PETER,)
    abcd = Signature("EnochRoot", 0xAF0CFE78, ENOCH_B64[:46] + "ABCD" + ENOCH_B64[46:])
    assert n.unverified_sigs == (ENOCH, abcd)


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad Name " + PETER_B64,
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + "— PeterNeumann\n",
        TEXT + "\n" + "— PeterNeumann \n",
        TEXT + "\n" + "— PeterNeumann AAAAAA==\n",  # fewer than 5 bytes
        TEXT + "\n" + "- PeterNeumann " + PETER_B64 + "\n",  # hyphen, not em dash
        TEXT + "\n" + "— PeterNeumann " + PETER_B64[:-1] + "\n",  # unpadded base64
        TEXT + "\n" + "— Peter+Neumann " + PETER_B64 + "\n",
        TEXT + "\r\n" + PETER_SIG,
    ],
)
def test_open_malformed(peter: note.Ed25519Verifier, msg: str) -> None:
    with pytest.raises(MalformedNote, match=r"^malformed note$"):
        note.open_note(msg.encode(), VerifierList(peter))


def test_open_tolerates_noncanonical_base64_like_go(peter: note.Ed25519Verifier) -> None:
    """Go's StdEncoding ignores non-zero unused bits in the final base64 character; an unknown
    co-signer's signature encoded that way must not make the note unreadable."""
    odd = ENOCH_SIG.replace("+QQ=", "+QR=")
    n = note.open_note((TEXT + "\n" + PETER_SIG + odd).encode(), VerifierList(peter))
    assert n.sigs == (PETER,)
    assert n.unverified_sigs[0].base64.endswith("+QR=")


def test_open_malformed_bytes(peter: note.Ed25519Verifier) -> None:
    for raw in [
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        b"\xed\xa0\x80\n\n" + PETER_SIG.encode(),  # encoded surrogate: not UTF-8
    ]:
        with pytest.raises(MalformedNote):
            note.open_note(raw, VerifierList(peter))


def test_open_size_limit(peter: note.Ed25519Verifier) -> None:
    msg = (TEXT + "\n" + PETER_SIG).encode()
    assert note.open_note(msg, [peter], max_size=len(msg)).sigs == (PETER,)
    with pytest.raises(MalformedNote):
        note.open_note(msg, [peter], max_size=len(msg) - 1)
    with pytest.raises(MalformedNote):
        note.open_note(b"x" * note.MAX_NOTE_SIZE + msg, [peter])


class _FixedVerifiers:
    def __init__(self, v: note.Verifier) -> None:
        self.v = v

    def verifier(self, name: str, key_hash: int) -> note.Verifier:
        return self.v


def test_open_mismatched_verifier(peter: note.Ed25519Verifier) -> None:
    misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(MismatchedVerifier):
        note.open_note((TEXT + "\n" + misnamed).encode(), _FixedVerifiers(peter))
    wrong_hash = PETER_SIG.replace("x08g", "xxxx")
    with pytest.raises(MismatchedVerifier):
        note.open_note((TEXT + "\n" + wrong_hash).encode(), _FixedVerifiers(peter))


def test_resign_adds_signature(peter: note.Ed25519Verifier) -> None:
    """x/mod's documentation example: re-signing an opened note appends the new signature."""
    opened = note.open_note((TEXT + "\n" + PETER_SIG).encode(), [peter])
    skey, vkey = note.generate_key("EnochRoot")
    msg = note.sign(opened, note.new_signer(skey))
    assert msg.startswith((TEXT + "\n" + PETER_SIG + "— EnochRoot ").encode())
    both = note.open_note(msg, [peter, note.new_verifier(vkey)])
    assert [s.name for s in both.sigs] == ["PeterNeumann", "EnochRoot"]


def test_key_rotation() -> None:
    """A server rotating keys signs with old and new; clients with either key accept the note,
    clients with neither do not, and a bad signature by any known key is fatal."""
    old_skey, old_v = note.generate_key("db")
    new_skey, new_vkey = note.generate_key("db")
    text = "go.sum database tree\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    msg = note.sign(text, [note.new_signer(old_skey), note.new_signer(new_skey)])
    old_verifier, new_verifier = note.new_verifier(old_v), note.new_verifier(new_vkey)

    only_old = note.open_note(msg, [old_verifier])
    assert [s.key_hash for s in only_old.sigs] == [old_verifier.key_hash]
    assert [s.key_hash for s in only_old.unverified_sigs] == [new_verifier.key_hash]
    only_new = note.open_note(msg, [new_verifier])
    assert [s.key_hash for s in only_new.sigs] == [new_verifier.key_hash]
    both = note.open_note(msg, [old_verifier, new_verifier])
    assert len(both.sigs) == 2 and both.unverified_sigs == ()
    with pytest.raises(UnverifiedNote):
        note.open_note(msg, [note.new_verifier(note.generate_key("db")[1])])

    # Corrupt only the new key's signature: a client that knows it must refuse.
    lines = msg.decode().split("\n")
    sig_line = lines[-2]
    raw = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    raw[10] ^= 1
    lines[-2] = f"— db {base64.b64encode(bytes(raw)).decode()}"
    forged = "\n".join(lines).encode()
    assert note.open_note(forged, [old_verifier]).sigs  # old key still fine
    with pytest.raises(InvalidSignature):
        note.open_note(forged, [old_verifier, new_verifier])


# --- properties ---------------------------------------------------------------------------------

_text_char = st.characters(codec="utf-8").filter(lambda c: c >= " " or c == "\n")
_texts = st.text(_text_char, max_size=200).map(lambda s: s + "\n")
_names = st.text(
    st.characters(codec="utf-8").filter(lambda c: c >= "!" and c not in "+\x7f"),
    min_size=1,
    max_size=20,
).filter(note.is_valid_name)

_SIGNER = note.new_signer(PETER_SKEY)
_VERIFIER = note.new_verifier(PETER_VKEY)


@settings(max_examples=200, deadline=None)
@given(_texts)
def test_property_sign_open_round_trip(text: str) -> None:
    n = note.open_note(note.sign(text, _SIGNER), [_VERIFIER])
    assert n.text == text
    assert [(s.name, s.key_hash) for s in n.sigs] == [("PeterNeumann", 0xC74F20A3)]
    assert n.unverified_sigs == ()


@settings(max_examples=200, deadline=None)
@given(_texts, st.data())
def test_property_tampered_text_fails(text: str, data: st.DataObject) -> None:
    msg = note.sign(text, _SIGNER)
    body = text.encode()
    i = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.sampled_from([b"a", b"b", b"\n", b"Z"]))
    tampered_text = body[:i] + replacement + body[i + 1 :]
    if tampered_text == body:
        return
    tampered = tampered_text + msg[len(body) :]
    with pytest.raises((InvalidSignature, MalformedNote)):
        note.open_note(tampered, [_VERIFIER])


@settings(max_examples=25, deadline=None)
@given(_names, _texts)
def test_property_generated_keys_round_trip(name: str, text: str) -> None:
    skey, vkey = note.generate_key(name)
    verifier = note.new_verifier(vkey)
    assert verifier.vkey == vkey
    n = note.open_note(note.sign(text, note.new_signer(skey)), [verifier])
    assert (n.text, n.sigs[0].name, n.sigs[0].key_hash) == (text, name, verifier.key_hash)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_property_open_never_crashes(msg: bytes) -> None:
    with contextlib.suppress(note.NoteError):
        note.open_note(msg, [_VERIFIER])


# --- cross-check with the real Go toolchain -----------------------------------------------------

_GOCHECK = Path(__file__).parent / "gocheck" / "main.go"


@pytest.fixture(scope="module")
def gocheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if GO is None:
        pytest.skip("go toolchain not on PATH")
    out = tmp_path_factory.mktemp("gocheck") / "gocheck"
    result = build_go_program(_GOCHECK, out)
    if result.returncode != 0:
        pytest.fail(f"building gocheck failed:\n{result.stderr}")
    return out


def _run(binary: Path, *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True, timeout=60, check=False)


def test_go_verifies_python_signed_note(gocheck: Path) -> None:
    skey, vkey = note.generate_key("sum.example.com")
    text = "go.sum database tree\n42\nq8lPCK6N8Q1+hZ2Kdh6/iWJ2Ak8Q4JNhg8jsPC1RB4U=\n"
    msg = note.sign(text, note.new_signer(skey))
    ok = _run(gocheck, "verify", vkey, stdin=msg)
    assert ok.returncode == 0, ok.stderr.decode()
    assert ok.stdout == text.encode()
    tampered = msg.replace(b"\n42\n", b"\n43\n")
    bad = _run(gocheck, "verify", vkey, stdin=tampered)
    assert bad.returncode != 0
    # The published x/mod vector verifies in Go too.
    peter = _run(gocheck, "verify", PETER_VKEY, stdin=(TEXT + "\n" + PETER_SIG).encode())
    assert peter.returncode == 0, peter.stderr.decode()


def test_python_verifies_go_signed_note(gocheck: Path) -> None:
    skey, vkey = note.generate_key("sum.example.com")
    text = "hello from Go\n"
    signed = _run(gocheck, "sign", skey, stdin=text.encode())
    assert signed.returncode == 0, signed.stderr.decode()
    assert signed.stdout == note.sign(text, note.new_signer(skey))  # Ed25519 is deterministic
    n = note.open_note(signed.stdout, [note.new_verifier(vkey)])
    assert n.text == text
    go_vkey = _run(gocheck, "vkey", skey, stdin=b"")
    assert go_vkey.stdout.decode().strip() == vkey
