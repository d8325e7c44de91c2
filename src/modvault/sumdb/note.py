"""Signed notes: the text format the checksum database signs its tree heads with.

Mirrors the behaviour of golang.org/x/mod/sumdb/note (see the package documentation there and
Go proposal 25530, "Secure the Public Go Module Ecosystem", section "Signed notes"). Pure: no I/O.

A signed note is a text ending in a newline, a blank line, then one or more signature lines::

    <text, ending in "\\n">
    <blank line>
    — <name> <base64(key hash (4 bytes, big-endian) || signature)>
    ...

The signature covers the text including its final newline but not the blank line. A name is
non-empty UTF-8 with no Unicode space and no ``+``. The only key type is Ed25519 (algorithm 1).
Keys travel as text:

- verifier key: ``<name>+<hash>+<base64(0x01 || public key)>``
- signer key:   ``PRIVATE+KEY+<name>+<hash>+<base64(0x01 || private key seed)>``

where ``<hash>`` is eight hex digits of the key hash: the first four bytes, big-endian, of
``SHA-256(name || "\\n" || 0x01 || public key)``.

A note may carry several signatures (for example during a key rotation the server signs with the
old and the new key); :func:`open_note` accepts it when at least one *known* key signed it and
every known key's signature is valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# cryptography (~7 MiB resident) is imported by the functions that sign or check a signature,
# not with this module: parsing keys and notes needs none of it, and a process that only serves
# stored artifacts never checks a signature.

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "AmbiguousVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "InvalidKey",
    "InvalidSignature",
    "InvalidSigner",
    "MalformedNote",
    "MismatchedVerifier",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "UnknownVerifier",
    "UnverifiedNote",
    "Verifier",
    "VerifierList",
    "Verifiers",
    "generate_key",
    "is_valid_name",
    "key_hash",
    "new_ed25519_verifier_key",
    "new_signer",
    "new_verifier",
    "open_note",
    "sign",
]

ALG_ED25519 = 1
"""The one algorithm identifier (x/mod note: "Generating Keys")."""

MAX_SIGNATURES = 100
"""x/mod's Open rejects a note with more than 100 signature lines, to bound the work."""

MAX_NOTE_SIZE = 1_000_000
"""modvault's bound on a whole signed note, in bytes. x/mod's note.Open has none, but its
tlog.ParseTree refuses tree texts over 1e6 bytes; we apply the same bound to the note."""

_SIG_PREFIX = "— "  # em dash U+2014, space
_SIG_SPLIT = b"\n\n"

# Go's unicode.IsSpace: the Unicode White_Space property. (Python's str.isspace() differs: it also
# counts U+001C..U+001F.)
_GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


# --- errors -------------------------------------------------------------------------------------


class NoteError(ValueError):
    """A signed note, key or signature breaks the note rules."""


class MalformedNote(NoteError):
    """The message is not a well-formed signed note (x/mod: "malformed note")."""

    def __init__(self, message: str = "malformed note") -> None:
        super().__init__(message)


class InvalidKey(NoteError):
    """A verifier or signer key string is malformed, of an unknown algorithm, or its hash is
    wrong (x/mod: "malformed verifier id", "unknown verifier algorithm",
    "invalid verifier hash")."""


class InvalidSigner(NoteError):
    """A signer has an invalid name (x/mod: "invalid signer")."""

    def __init__(self, message: str = "invalid signer") -> None:
        super().__init__(message)


class UnknownVerifier(NoteError):
    """A :class:`Verifiers` lookup found no key with this name and hash.

    :func:`open_note` treats it as "not ours" and records the signature as unverified."""

    def __init__(self, name: str, key_hash: int) -> None:
        super().__init__(f"unknown key {name}+{key_hash:08x}")
        self.name = name
        self.key_hash = key_hash


class AmbiguousVerifier(NoteError):
    """Several known keys share one name and hash: the verifier list itself is suspect."""

    def __init__(self, name: str, key_hash: int) -> None:
        super().__init__(f"ambiguous key {name}+{key_hash:08x}")
        self.name = name
        self.key_hash = key_hash


class MismatchedVerifier(NoteError):
    """A :class:`Verifiers` returned a verifier for another name or hash than asked for."""

    def __init__(self) -> None:
        super().__init__("verifier name or hash doesn't match signature")


class InvalidSignature(NoteError):
    """A known key's signature on the note does not verify: the note was tampered with or forged.

    Deliberately not a subclass of :class:`UnverifiedNote`: this is evidence of misbehaviour,
    not merely a note nobody we trust has signed."""

    def __init__(self, name: str, key_hash: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_hash:08x}")
        self.name = name
        self.key_hash = key_hash


class UnverifiedNote(NoteError):
    """The note parsed, but no known key signed it ("unknown verifier"). The parsed, unverified
    note is available as :attr:`note` (x/mod: UnverifiedNoteError)."""

    def __init__(self, note: Note) -> None:
        super().__init__("note has no verifiable signatures")
        self.note = note


# --- keys ---------------------------------------------------------------------------------------


def is_valid_name(name: str) -> bool:
    """Whether *name* may name a key: non-empty, valid UTF-8, no Unicode space, no ``+``."""
    if not name or "+" in name or any(c in _GO_SPACE for c in name):
        return False
    try:
        name.encode("utf-8")  # rejects lone surrogates, which are not valid UTF-8
    except UnicodeEncodeError:
        return False
    return True


def key_hash(name: str, key: bytes) -> int:
    """The 32-bit key hash: first four bytes (big-endian) of SHA-256(name || "\\n" || key), where
    *key* is the encoded public key (algorithm byte followed by the key)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(s: str) -> bytes | None:
    """Standard padded base64, as Go's base64.StdEncoding decodes it; None when *s* is not.

    Like Go (and unlike tree hashes, see tlog.parse_tree), non-zero unused bits in the last
    character are tolerated: a co-signer's oddly encoded signature must not make us refuse a
    note the go command accepts. (Go also skips CR and LF inside base64; they cannot occur
    here, a note line has none and a key with one is refused.)"""
    if not _B64.fullmatch(s):
        return None
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Verifier(Protocol):
    """Verifies signatures made with one key."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> int: ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether *sig* is a valid signature of *msg* by this key."""
        ...


class Signer(Protocol):
    """Signs messages with one key."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> int: ...

    def sign(self, msg: bytes) -> bytes:
        """A signature of *msg*."""
        ...


@dataclass(frozen=True)
class Ed25519Verifier:
    """An Ed25519 public key with its name and key hash. Build one with :func:`new_verifier`."""

    name: str
    key_hash: int
    public_key: bytes = field(repr=False)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    @property
    def vkey(self) -> str:
        """The verifier key text ``name+hash+base64(0x01||pubkey)``."""
        encoded = bytes([ALG_ED25519]) + self.public_key
        return f"{self.name}+{self.key_hash:08x}+{_b64encode(encoded)}"


class Ed25519Signer:
    """An Ed25519 private key with its name and key hash. Build one with :func:`new_signer`.

    The seed is kept private to the object and never appears in ``repr``."""

    __slots__ = ("_key", "key_hash", "name")

    def __init__(self, name: str, seed: bytes) -> None:
        if not is_valid_name(name):
            raise InvalidKey("malformed verifier id")
        if len(seed) != 32:
            raise InvalidKey("malformed verifier id")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key: Ed25519PrivateKey = Ed25519PrivateKey.from_private_bytes(seed)
        self.name = name
        self.key_hash = key_hash(name, bytes([ALG_ED25519]) + self._public_bytes())

    def _public_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, msg: bytes) -> bytes:
        return self._key.sign(msg)

    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self.name, self.key_hash, self._public_bytes())

    def __repr__(self) -> str:
        return f"Ed25519Signer({self.name}+{self.key_hash:08x})"


def _split_key(key: str, parts: int) -> list[str] | None:
    """Split at the first ``parts - 1`` pluses; the last part keeps any further ``+``
    (base64 uses ``+``). None when there are too few pluses."""
    fields = key.split("+", parts - 1)
    return fields if len(fields) == parts else None


def _parse_key_fields(name: str, hash16: str, key64: str) -> tuple[int, bytes]:
    raw = _b64decode(key64)
    if not _HEX8.fullmatch(hash16) or raw is None or not raw or not is_valid_name(name):
        raise InvalidKey("malformed verifier id")
    return int(hash16, 16), raw


def new_verifier(vkey: str) -> Ed25519Verifier:
    """Parse a verifier key ``name+hash+base64(0x01||pubkey)``.

    Raises :class:`InvalidKey` when it is malformed, when the hash does not match the name and
    key, or when the algorithm is not Ed25519 (the checks x/mod's NewVerifier makes, in order).
    """
    fields = _split_key(vkey, 3)
    if fields is None:
        raise InvalidKey("malformed verifier id")
    name, hash16, key64 = fields
    khash, raw = _parse_key_fields(name, hash16, key64)
    if khash != key_hash(name, raw):
        raise InvalidKey("invalid verifier hash")
    if raw[0] != ALG_ED25519:
        raise InvalidKey("unknown verifier algorithm")
    if len(raw) != 1 + 32:
        raise InvalidKey("malformed verifier id")
    return Ed25519Verifier(name, khash, raw[1:])


def new_signer(skey: str) -> Ed25519Signer:
    """Parse a signer key ``PRIVATE+KEY+name+hash+base64(0x01||seed)``.

    The hash names the *public* key, so it is checked after deriving the public key from the seed.
    """
    fields = _split_key(skey, 5)
    if fields is None or fields[0] != "PRIVATE" or fields[1] != "KEY":
        raise InvalidKey("malformed verifier id")
    _, _, name, hash16, key64 = fields
    khash, raw = _parse_key_fields(name, hash16, key64)
    if raw[0] != ALG_ED25519:
        raise InvalidKey("unknown verifier algorithm")
    if len(raw) != 1 + 32:
        raise InvalidKey("malformed verifier id")
    signer = Ed25519Signer(name, raw[1:])
    if signer.key_hash != khash:
        raise InvalidKey("invalid verifier hash")
    return signer


def _format_skey(name: str, khash: int, seed: bytes) -> str:
    return f"PRIVATE+KEY+{name}+{khash:08x}+{_b64encode(bytes([ALG_ED25519]) + seed)}"


def generate_key(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key pair for the server *name*: ``(skey, vkey)``.

    The signer key *skey* is secret; give *vkey* to clients (for the go command, in GOSUMDB).
    """
    if not is_valid_name(name):
        raise InvalidKey("malformed verifier id")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    signer = Ed25519Signer(name, seed)
    return _format_skey(name, signer.key_hash, seed), signer.verifier().vkey


def new_ed25519_verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key text for a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise InvalidKey(f"invalid public key size {len(public_key)}, expected 32")
    if not is_valid_name(name):
        raise InvalidKey("malformed verifier id")
    encoded = bytes([ALG_ED25519]) + public_key
    return f"{name}+{key_hash(name, encoded):08x}+{_b64encode(encoded)}"


# --- known verifiers ----------------------------------------------------------------------------


@runtime_checkable
class Verifiers(Protocol):
    """Looks up a known verifier by key name and hash."""

    def verifier(self, name: str, key_hash: int) -> Verifier:
        """The verifier for this key; raises :class:`UnknownVerifier` when the key is not known
        (and may raise another :class:`NoteError`, which :func:`open_note` lets through)."""
        ...


class VerifierList:
    """:class:`Verifiers` over a fixed list of keys, e.g. the old and new key during a rotation."""

    def __init__(self, *verifiers: Verifier) -> None:
        self._by_key: dict[tuple[str, int], list[Verifier]] = {}
        for v in verifiers:
            self._by_key.setdefault((v.name, v.key_hash), []).append(v)

    def verifier(self, name: str, key_hash: int) -> Verifier:
        found = self._by_key.get((name, key_hash))
        if not found:
            raise UnknownVerifier(name, key_hash)
        if len(found) > 1:
            raise AmbiguousVerifier(name, key_hash)
        return found[0]


# --- notes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key hash, and the base64 of ``hash4 || signature``."""

    name: str
    key_hash: int
    base64: str


@dataclass(frozen=True)
class Note:
    """A note's text with its verified and unverified signatures."""

    text: str
    sigs: tuple[Signature, ...] = ()
    unverified_sigs: tuple[Signature, ...] = ()


def _has_bad_char(text: str) -> bool:
    """An ASCII control character other than newline."""
    return any(c < " " and c != "\n" for c in text)


def open_note(
    msg: bytes,
    known: Verifiers | Iterable[Verifier],
    *,
    max_size: int = MAX_NOTE_SIZE,
) -> Note:
    """Parse the signed note *msg* and check its signatures against the *known* keys.

    A signature by a known key that verifies goes to :attr:`Note.sigs`; a signature by an unknown
    key goes to :attr:`Note.unverified_sigs`; repeated signatures are dropped. Raises:

    - :class:`MalformedNote`: not UTF-8, a control character other than newline, no blank line
      before the signature block, a bad signature line or name, more than
      :data:`MAX_SIGNATURES` signatures, or more than *max_size* bytes;
    - :class:`InvalidSignature`: a known key's signature does not verify;
    - :class:`UnverifiedNote`: well formed, but signed by no known key (carries the note);
    - any other :class:`NoteError` the lookup raises (e.g. :class:`AmbiguousVerifier`), and
      :class:`MismatchedVerifier` when the lookup answers for the wrong key.
    """
    verifiers = known if isinstance(known, Verifiers) else VerifierList(*known)
    if len(msg) > max_size:
        raise MalformedNote()
    try:
        decoded = msg.decode("utf-8")  # strict: also rejects encoded surrogates, as Go does
    except UnicodeDecodeError:
        raise MalformedNote() from None
    if _has_bad_char(decoded):
        raise MalformedNote()

    split = msg.rfind(_SIG_SPLIT)
    if split < 0:
        raise MalformedNote()
    text_bytes, sig_block = msg[: split + 1], msg[split + 2 :]
    if not sig_block or not sig_block.endswith(b"\n"):
        raise MalformedNote()
    text = text_bytes.decode("utf-8")

    sigs: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    seen_unverified: set[str] = set()
    lines = sig_block.decode("utf-8").split("\n")[:-1]  # block ends in "\n"
    if len(lines) > MAX_SIGNATURES:  # bound the work before any signature is checked
        raise MalformedNote()
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNote()
        body = line[len(_SIG_PREFIX) :]
        name, _, b64 = body.partition(" ")
        raw = _b64decode(b64)
        if raw is None or not is_valid_name(name) or not b64 or len(raw) < 5:
            raise MalformedNote()
        khash = int.from_bytes(raw[:4], "big")
        sig = raw[4:]

        try:
            verifier = verifiers.verifier(name, khash)
        except UnknownVerifier:
            if body not in seen_unverified:  # drop repeated identical unverified signatures
                seen_unverified.add(body)
                unverified.append(Signature(name, khash, b64))
            continue
        if verifier.name != name or verifier.key_hash != khash:
            raise MismatchedVerifier()
        if (name, khash) in seen:  # one signature per known key; ignore repeats
            continue
        seen.add((name, khash))
        if not verifier.verify(text_bytes, sig):
            raise InvalidSignature(name, khash)
        sigs.append(Signature(name, khash, b64))

    note = Note(text, tuple(sigs), tuple(unverified))
    if not sigs:
        raise UnverifiedNote(note)
    return note


def sign(text: str | Note, signers: Signer | Sequence[Signer]) -> bytes:
    """Sign *text* with each of *signers* and return the encoded signed note.

    *text* must end in a newline and contain no ASCII control characters other than newline.
    When *text* is a :class:`Note` (say, one returned by :func:`open_note`), its existing
    signatures are kept, listed before the new ones, except those made with a key one of
    *signers* holds, which the new signature replaces (co-signing, key rotation).
    """
    note = text if isinstance(text, Note) else Note(text)
    signer_list: Sequence[Signer] = [signers] if not isinstance(signers, Sequence) else signers
    if not note.text.endswith("\n") or _has_bad_char(note.text):
        raise MalformedNote()
    try:
        text_bytes = note.text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedNote() from None

    new_lines: list[str] = []
    replaced: set[tuple[str, int]] = set()
    for signer in signer_list:
        name, khash = signer.name, signer.key_hash
        if not is_valid_name(name) or not 0 <= khash < 1 << 32:
            raise InvalidSigner()
        replaced.add((name, khash))
        sig = signer.sign(text_bytes)
        new_lines.append(f"{_SIG_PREFIX}{name} {_b64encode(khash.to_bytes(4, 'big') + sig)}\n")

    old_lines: list[str] = []
    for old in (*note.sigs, *note.unverified_sigs):
        if not is_valid_name(old.name):
            raise MalformedNote()
        if (old.name, old.key_hash) in replaced:
            continue
        raw = _b64decode(old.base64)
        if raw is None or len(raw) < 4 or int.from_bytes(raw[:4], "big") != old.key_hash:
            raise MalformedNote()
        old_lines.append(f"{_SIG_PREFIX}{old.name} {old.base64}\n")

    return text_bytes + b"\n" + "".join(old_lines + new_lines).encode("utf-8")
