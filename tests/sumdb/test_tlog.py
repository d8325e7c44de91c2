"""Transparency-log math, tiles, tree notes, records, and the append-only log model.

Vectors come from RFC 6962's reference tree (Certificate Transparency test data), from
golang.org/x/mod/sumdb/tlog's tests (ct_test.go with Google's Argon 2020 log, note_test.go,
tlog_test.go, tile_test.go), and from running x/mod's tlog (as vendored in the Go 1.27
toolchain) over the "leaf %d" records its tests use.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.sumdb import log as sumlog
from modvault.sumdb import note, tlog
from modvault.sumdb.tlog import Tile, Tree

# --- helpers ------------------------------------------------------------------------------------


class Storage:
    """Stored hashes in a list; checks that readers ask for increasing indexes, as x/mod's
    functions do."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.n = 0

    def __call__(self, indexes: Sequence[int]) -> list[bytes]:
        assert all(a < b for a, b in itertools.pairwise(indexes)), indexes
        return [self.hashes[i] for i in indexes]

    def add(self, data: bytes) -> None:
        self.hashes.extend(tlog.stored_hashes(self.n, data, self))
        self.n += 1


def storage_of(records: Sequence[bytes]) -> Storage:
    s = Storage()
    for r in records:
        s.add(r)
    return s


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def b64(s: str) -> bytes:
    return base64.b64decode(s)


# --- known answers ------------------------------------------------------------------------------

# The RFC 6962 reference tree (certificate-transparency test vectors): root hash after each leaf.
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_rfc6962_roots() -> None:
    s = Storage()
    for i, leaf in enumerate(RFC6962_LEAVES):
        s.add(leaf)
        assert tlog.tree_hash(i + 1, s).hex() == RFC6962_ROOTS[i]


def test_empty_tree_hash() -> None:
    assert tlog.tree_hash(0, Storage()) == bytes(32)


# From running x/mod's tlog over "leaf %d" records.
XMOD_TREES = {
    1: "1bb97dcc21635d47e2663efdfd0a174686d98dd701352dd2cd06e8b43fd3d305",
    2: "fc5f6b88ff8554f75bb2f9e6f39c31b1936d44b69276edf7b1205a955b9761e3",
    3: "d4f92c8fbb89720eb3b55677c7d7efaddfeb10d11a1a84a0ba8f1a23337faa95",
    7: "5a61fc2b54f9cfa71774f2432143dd40c6cb2b11947faf65a7d3da5cb65199c8",
    8: "c5c2c820ed342fdda8ce896b6b9cf5b8c00a21cc4b20714cc6e5d3c05c35240b",
    13: "cf9b4c2a44a7caa722d5d548ee64ff90a119b0c31acac3444dc583000a39d3ca",
    64: "f261e23692d978fdac3fd949db5495940a437ae671b9a6dde9aa6118d003652f",
    100: "13f88915c560dc911a1da0fb209d84a20971051f294ebeb428fb3fc293af2743",
}
XMOD_RECORD_PROOF_13_5 = [
    "83115f8947955fafdc2a27e7f4c0854bbd8da27bb1b3e3405db571c9af8dbe1a",
    "6ebcc54b6710ee0610a7fc82cde51713db280e3dc84515bde9632a19b65a0b93",
    "4f631084a157c54f54fcfb23ff5eb8650c4ba160c295bb13a9832b109d52677e",
    "14a20345371e2cf4d6bb34adec274a9f95fc30f31508d70465a56f868b601975",
]
XMOD_TREE_PROOF_100_37 = [
    "b34889394564290c00c6cc7d5043d5e3c2199484c301c1182af346758ddf11b4",
    "900236987394e2df5f1f854ca103f6dbe60ca7c150f09441412abb9a95d25784",
    "3859110b621ad9bbcc94faecba692aaf8e5acb7db15d1aa41a6aa4e2698a2069",
    "5be77b8ca4dbee84c59ad0bccb17d56c733750d0a6d1b780de3d8e969dd03162",
    "20543b8da96c920043be4aa8a1a707dfa0724436760fba563c344e2fdc30a885",
    "9c494a6f5b1ef22d42f0509f45936b8a5c05e8ea06bef8b42324f15fd52c97d6",
    "9a5b5a2a29571cad3d81555f34bf3256fda56279691cdec34f57c8f484acb3fa",
    "5b0f079a0616e900406d4765bc00c474b42d19cdcfb3f42cebbf102a7c2407fc",
]
# SHA-256 of each tile's content, for NewTiles(2, 0, 13).
XMOD_TILES_2_0_13 = {
    "tile/2/0/000": "4e56aa9b799af7428d29c698b7177e62da6dc0fa28d7a50b1367350a157b5ac1",
    "tile/2/0/001": "1ac48cf9f645200d8a2fc31c8fdab7b323a9b5a2f8714d9ed36ef2e71dbc7515",
    "tile/2/0/002": "37d0b32f7ba1805e2b931011138db60ffe2f91fe1c716e5e55c6e219dbe477fb",
    "tile/2/0/003.p/1": "7c615894ac11bd760fdf2de5007c423fb7b4ba8b4ef4c803d6ce8a42436367fe",
    "tile/2/1/000.p/3": "9ecd22fbc03c53b7c6af7fa77836f6a93ad83683301fc51a30ac62a79f624910",
}
XMOD_NEW_TILES_3_37_100 = [
    "tile/3/0/004",
    "tile/3/0/005",
    "tile/3/0/006",
    "tile/3/0/007",
    "tile/3/0/008",
    "tile/3/0/009",
    "tile/3/0/010",
    "tile/3/0/011",
    "tile/3/0/012.p/4",
    "tile/3/1/000",
    "tile/3/1/001.p/4",
    "tile/3/2/000.p/1",
]


@pytest.fixture(scope="module")
def hundred() -> Storage:
    return storage_of(leaves(100))


def test_xmod_tree_hashes(hundred: Storage) -> None:
    for n, want in XMOD_TREES.items():
        assert tlog.tree_hash(n, hundred).hex() == want
    assert tlog.stored_hash_count(100) == len(hundred.hashes) == 197


def test_xmod_proofs(hundred: Storage) -> None:
    proof = tlog.prove_record(13, 5, hundred)
    assert [h.hex() for h in proof] == XMOD_RECORD_PROOF_13_5
    tlog.check_record(proof, 13, bytes.fromhex(XMOD_TREES[13]), 5, tlog.record_hash(b"leaf 5"))
    tproof = tlog.prove_tree(100, 37, hundred)
    assert [h.hex() for h in tproof] == XMOD_TREE_PROOF_100_37
    tlog.check_tree(tproof, 100, bytes.fromhex(XMOD_TREES[100]), 37, tlog.tree_hash(37, hundred))


def test_xmod_tiles(hundred: Storage) -> None:
    import hashlib

    got = {
        t.path(): hashlib.sha256(tlog.read_tile_data(t, hundred)).hexdigest()
        for t in tlog.new_tiles(2, 0, 13)
    }
    assert got == XMOD_TILES_2_0_13
    assert [t.path() for t in tlog.new_tiles(3, 37, 100)] == XMOD_NEW_TILES_3_37_100


# Google Argon 2020 CT log responses (x/mod sumdb/tlog/testdata/argon2020): a real RFC 6962 log.
ARGON_SIZE = 961984013
ARGON_ROOT = "dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM="
ARGON_LEAF_10000 = (
    "AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAxCzAJ"
    "BgNVBAYTAkdCMRswGQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNVBAoTEUNP"
    "TU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQDEy1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3VyZSBTZXJ2ZXIg"
    "Q0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBfMSEwHwYDVQQLExhEb21haW4gQ29udHJvbCBWYWxpZGF0"
    "ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxhbmRsb3Jkcy5jb20uYXUwggEiMA0G"
    "CSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvBz60f14gDufF2haWbOxyJ0a3o"
    "pAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69HuHgzhusPf1Ytfk3ps1PRC14Mkyr"
    "S4kwPrk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy56fBRKG05Fr5wNq3Acak5kYZdNsLhhml"
    "rqAfAjiombW3hb3V5blJdRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+aifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU"
    "1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSMEGDAWgBSQr2o6lFoL2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz"
    "01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1UdEwEB/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsG"
    "AQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcwKzApBggrBgEFBQcCARYdaHR0cHM6Ly9zZWN1cmUuY29tb2Rv"
    "LmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEswSaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NPTU9ET1JT"
    "QURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0"
    "cDovL2NydC5jb21vZG9jYS5jb20vQ09NT0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggr"
    "BgEFBQcwAYYYaHR0cDovL29jc3AuY29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFu"
    "ZGxvcmRzLmNvbS5hdTANBgkqhkiG9w0BAQsFAAOCAQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK"
    "2b9vvBLDWAaqm8c0YL1h+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs"
    "3UUsmShAgPwNohAtL9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXjHTeuQj6lR+TNrQXJuhwT"
    "XYe+20rrpPQxc1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbkoriN"
    "8b6jcWExtrYO6bm2TwAA"
)
ARGON_AUDIT_PATH = [
    "T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=",
    "9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=",
    "D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=",
    "wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=",
    "516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=",
    "naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=",
    "mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=",
    "Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=",
    "yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=",
    "n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=",
    "go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=",
    "8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=",
    "6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=",
    "2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=",
    "nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=",
    "mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=",
    "JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=",
    "UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=",
    "hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=",
    "II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=",
    "d609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=",
    "rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
]
ARGON_OLD_SIZE = 3654490
ARGON_OLD_ROOT = "AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ="
ARGON_CONSISTENCY = [
    "80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=",
    "FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=",
    "Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=",
    "eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=",
    "QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=",
    "XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=",
    "SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=",
    "WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=",
    "QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=",
    "Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=",
    "mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=",
    "q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=",
    "jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=",
    "GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=",
    "x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=",
    "6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=",
    "Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=",
    "DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=",
    "2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=",
    "3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=",
    "s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=",
    "z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
]


def test_certificate_transparency_proofs() -> None:
    """Proofs from a real CT log verify: our tree is RFC 6962's tree."""
    root = tlog.parse_hash(ARGON_ROOT)
    leaf = tlog.record_hash(b64(ARGON_LEAF_10000))
    audit = [tlog.parse_hash(h) for h in ARGON_AUDIT_PATH]
    tlog.check_record(audit, ARGON_SIZE, root, 10000, leaf)
    with pytest.raises(tlog.ProofError):
        tlog.check_record(audit, ARGON_SIZE, root, 10001, leaf)
    consistency = [tlog.parse_hash(h) for h in ARGON_CONSISTENCY]
    old = tlog.parse_hash(ARGON_OLD_ROOT)
    tlog.check_tree(consistency, ARGON_SIZE, root, ARGON_OLD_SIZE, old)
    with pytest.raises(tlog.ProofError):
        tlog.check_tree(consistency, ARGON_SIZE, root, ARGON_OLD_SIZE + 1, old)


# --- stored hash indexes ------------------------------------------------------------------------


def test_stored_hash_index_examples() -> None:
    # Storage order for 4 records: (0,0) (0,1) (1,0) (0,2) (0,3) (1,1) (2,0)
    order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
    for i, (level, n) in enumerate(order):
        assert tlog.stored_hash_index(level, n) == i
        assert tlog.split_stored_hash_index(i) == (level, n)


def test_split_stored_hash_index_round_trip() -> None:
    for level in range(10):
        for n in range(100):
            x = tlog.stored_hash_index(level, n)
            assert tlog.split_stored_hash_index(x) == (level, n)
    for x in range(2000):
        level, n = tlog.split_stored_hash_index(x)
        assert tlog.stored_hash_index(level, n) == x


@settings(max_examples=300)
@given(st.integers(0, 62), st.integers(0, 2**40))
def test_property_split_stored_hash_index(level: int, n: int) -> None:
    assert tlog.split_stored_hash_index(tlog.stored_hash_index(level, n)) == (level, n)


def test_stored_hash_count() -> None:
    s = Storage()
    assert tlog.stored_hash_count(0) == 0
    for i in range(200):
        s.add(b"x%d" % i)
        assert tlog.stored_hash_count(i + 1) == len(s.hashes)


# --- the x/mod TestTree walk --------------------------------------------------------------------


def test_tree_walk() -> None:
    """Grow a tree to 64 leaves, checking at every size: tiles extend earlier tiles, every stored
    hash is readable from its tile, record and tree proofs work (directly and through a
    TileHashReader) and fail when any proof hash is corrupted."""
    height = 2
    s = Storage()
    tiles: dict[Tile, bytes] = {}
    trees: list[bytes] = []
    leaf_hashes: list[bytes] = []
    for i in range(64):
        data = b"leaf %d" % i
        old_storage = len(s.hashes)
        s.add(data)
        leaf_hashes.append(tlog.record_hash(data))
        th = tlog.tree_hash(i + 1, s)
        trees.append(th)

        for tile in tlog.new_tiles(height, i, i + 1):
            content = tlog.read_tile_data(tile, s)
            if tile.W > 1:
                old = tiles[Tile(tile.H, tile.L, tile.N, tile.W - 1)]
                assert content[: len(old)] == old and len(content) == len(old) + 32
            tiles[tile] = content
        for tile in tlog.new_tiles(height, 0, i + 1):
            assert tiles[tile] == tlog.read_tile_data(tile, s)
        for j in range(old_storage, len(s.hashes)):
            tile = tlog.tile_for_index(height, j)
            assert tlog.hash_from_tile(tile, tiles[tile], j) == s.hashes[j]

        thr = tlog.TileHashReader(Tree(i + 1, th), height, lambda ts: [tiles[t] for t in ts])
        for j in range(i + 1):
            proof = tlog.prove_record(i + 1, j, s)
            tlog.check_record(proof, i + 1, th, j, leaf_hashes[j])
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                with pytest.raises(tlog.ProofError):
                    tlog.check_record(bad, i + 1, th, j, leaf_hashes[j])
            assert thr([tlog.stored_hash_index(0, j)]) == [leaf_hashes[j]]
            assert tlog.prove_record(i + 1, j, thr) == proof

        with pytest.raises(tlog.TlogError):
            thr([(i + 1) * 2])  # not in the tree

        for j in range(i + 1):
            assert tlog.tree_hash(j + 1, thr) == trees[j]
            proof = tlog.prove_tree(i + 1, j + 1, thr)
            assert proof == tlog.prove_tree(i + 1, j + 1, s)
            tlog.check_tree(proof, i + 1, th, j + 1, trees[j])
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                with pytest.raises(tlog.ProofError):
                    tlog.check_tree(bad, i + 1, th, j + 1, trees[j])


def test_proof_input_validation(hundred: Storage) -> None:
    h = tlog.record_hash(b"leaf 0")
    for t, n in [(0, 0), (5, 5), (5, -1), (-1, 0)]:
        with pytest.raises(tlog.TlogError):
            tlog.prove_record(t, n, hundred)
        with pytest.raises(tlog.TlogError):
            tlog.check_record([], t, h, n, h)
    for t, n in [(0, 0), (5, 6), (5, 0), (0, 1)]:
        with pytest.raises(tlog.TlogError):
            tlog.prove_tree(t, n, hundred)
        with pytest.raises(tlog.TlogError):
            tlog.check_tree([], t, h, n, h)
    # A one-record tree: the proof is empty and the tree hash is the record hash.
    assert tlog.prove_record(1, 0, hundred) == []
    tlog.check_record([], 1, h, 0, h)
    with pytest.raises(tlog.ProofError):
        tlog.check_record([h], 1, h, 0, h)  # no extra hashes allowed
    assert tlog.prove_tree(7, 7, hundred) == []
    with pytest.raises(tlog.TlogError):
        tlog.check_record([b"short"], 2, h, 0, h)


def test_short_reader_is_an_error() -> None:
    with pytest.raises(tlog.TlogError):
        tlog.tree_hash(3, lambda ix: [bytes(32)])
    with pytest.raises(tlog.TlogError):
        tlog.stored_hashes(1, b"x", lambda ix: [])


# --- properties: proofs -------------------------------------------------------------------------


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    records = draw(st.lists(st.binary(max_size=8), min_size=1, max_size=70))
    return records, draw(st.integers(0, len(records) - 1))


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@settings(max_examples=150, deadline=None)
@given(tree_and_index(), st.data())
def test_property_record_proofs(case: tuple[list[bytes], int], data: st.DataObject) -> None:
    records, n = case
    t = data.draw(st.integers(n + 1, len(records)))
    s = storage_of(records)
    th = tlog.tree_hash(t, s)
    h = tlog.record_hash(records[n])
    proof = tlog.prove_record(t, n, s)
    tlog.check_record(proof, t, th, n, h)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = _flip(bad[k], data.draw(st.integers(0, 255)))
        with pytest.raises(tlog.ProofError):
            tlog.check_record(bad, t, th, n, h)
        with pytest.raises(tlog.ProofError):
            tlog.check_record(proof[:-1], t, th, n, h)
    with pytest.raises(tlog.ProofError):
        tlog.check_record(proof, t, _flip(th, data.draw(st.integers(0, 255))), n, h)
    with pytest.raises(tlog.ProofError):
        tlog.check_record(proof, t, th, n, _flip(h, data.draw(st.integers(0, 255))))
    with pytest.raises(tlog.ProofError):
        tlog.check_record([*proof, bytes(32)], t, th, n, h)


@settings(max_examples=150, deadline=None)
@given(tree_and_index(), st.data())
def test_property_tree_proofs(case: tuple[list[bytes], int], data: st.DataObject) -> None:
    records, m = case
    n = m + 1
    t = data.draw(st.integers(n, len(records)))
    s = storage_of(records)
    th, h = tlog.tree_hash(t, s), tlog.tree_hash(n, s)
    proof = tlog.prove_tree(t, n, s)
    tlog.check_tree(proof, t, th, n, h)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = _flip(bad[k], data.draw(st.integers(0, 255)))
        with pytest.raises(tlog.ProofError):
            tlog.check_tree(bad, t, th, n, h)
    with pytest.raises(tlog.ProofError):
        tlog.check_tree(proof, t, _flip(th, data.draw(st.integers(0, 255))), n, h)
    with pytest.raises(tlog.ProofError):
        tlog.check_tree(proof, t, th, n, _flip(h, data.draw(st.integers(0, 255))))


# --- tiles --------------------------------------------------------------------------------------

TILE_PATHS = [
    ("tile/4/0/001", Tile(4, 0, 1, 16)),
    ("tile/4/0/001.p/5", Tile(4, 0, 1, 5)),
    ("tile/3/5/x123/x456/078", Tile(3, 5, 123456078, 8)),
    ("tile/3/5/x123/x456/078.p/2", Tile(3, 5, 123456078, 2)),
    ("tile/1/0/x003/x057/500", Tile(1, 0, 3057500, 2)),
    ("tile/1/data/x003/x057/500", Tile(1, -1, 3057500, 2)),
    ("tile/8/0/x001/234.p/5", Tile(8, 0, 1234, 5)),
    ("tile/8/data/000", Tile(8, -1, 0, 256)),
    ("tile/8/2/000.p/1", Tile(8, 2, 0, 1)),
    ("tile/30/63/000", Tile(30, 63, 0, 1 << 30)),
    ("tile/3/4/x001/x234/067.p/1", Tile(3, 4, 1234067, 1)),
]

BAD_TILE_PATHS = [
    "tile/3/5/123/456/078",  # missing x prefixes
    "tile/3/-1/123/456/078",
    "tile/3/5/x123/x456/078.p/8",  # full width written as partial
    "tile/3/5/x123/x456/078.p/9",
    "tile/3/5/x123/x456/078.p/0",
    "tile/3/5/078.p/02",
    "tile/3/5/078.p/",
    "tile/3/5/078.p",
    "tile/0/0/000",
    "tile/31/0/000",
    "tile/03/0/000",
    "tile/3/05/000",
    "tile/3/64/000",
    "tile/3/0/x000/123",  # not canonical: leading zero group
    "tile/3/0/1234",
    "tile/3/0/12",
    "tile/3/0/x123",
    "tile/3/0/000/",
    "/tile/3/0/000",
    "tile/3/0/",
    "tile/3/0",
    "tile/+3/0/000",
    "tile/3/0/-01",
    "tile/3/0/00a",
    "tiles/3/0/000",
    "tile/3/data/000.p/x",
    "tile/3/0/x009/x223/x372/x036/x854/x775/808",  # N = 2**63 overflows int64
    "tile/3/0/000\n",
    "tile/3/0/٠٠٠",  # non-ASCII digits
    "tile/3/0/000.p/" + "1" * 5000,  # huge numbers are rejected, not crashed on
    "tile/3/0/" + "x001/" * 5000 + "000",
]


@pytest.mark.parametrize(("path", "tile"), TILE_PATHS)
def test_tile_path(path: str, tile: Tile) -> None:
    assert tile.path() == path
    assert tlog.parse_tile_path(path) == tile


@pytest.mark.parametrize("path", BAD_TILE_PATHS)
def test_bad_tile_path(path: str) -> None:
    with pytest.raises(tlog.MalformedTilePath):
        tlog.parse_tile_path(path)


def test_tile_validation() -> None:
    for args in [
        (0, 0, 0, 1),
        (31, 0, 0, 1),
        (2, -2, 0, 1),
        (2, 64, 0, 1),
        (2, 0, -1, 1),
        (2, 0, 0, 0),
        (2, 0, 0, 5),
    ]:
        with pytest.raises(tlog.TlogError):
            Tile(*args)


_tiles = st.builds(
    lambda h, level, n, data: Tile(h, level, n, data.draw(st.integers(1, 1 << h))),
    st.integers(1, 30),
    st.integers(-1, 63),
    st.integers(0, 2**63 - 1),
    st.data(),
)


@settings(max_examples=500)
@given(_tiles)
def test_property_tile_path_round_trip(tile: Tile) -> None:
    assert tlog.parse_tile_path(tile.path()) == tile


@settings(max_examples=500)
@given(st.text(alphabet="tile/0123456789x.pda-+", max_size=40) | st.text(max_size=40))
def test_property_parse_tile_path_strict(path: str) -> None:
    try:
        tile = tlog.parse_tile_path(path)
    except tlog.MalformedTilePath:
        return
    assert tile.path() == path  # anything accepted is canonical


@pytest.mark.parametrize(
    ("old", "new", "count"),
    [
        (1, 1, 0),
        (100, 101, 1),
        (1023, 1025, 3),
        (1024, 1030, 1),
        (1030, 2000, 1),
        (1030, 10000, 10),
        (49516517, 49516586, 3),
    ],
)
def test_new_tiles_count(old: int, new: int, count: int) -> None:
    assert len(tlog.new_tiles(10, old, new)) == count


def test_tile_in_tree() -> None:
    assert tlog.tile_in_tree(Tile(2, 0, 0, 4), 4)
    assert not tlog.tile_in_tree(Tile(2, 0, 0, 4), 3)
    assert tlog.tile_in_tree(Tile(2, 0, 0, 3), 3)
    assert tlog.tile_in_tree(Tile(2, 1, 0, 1), 4)
    assert not tlog.tile_in_tree(Tile(2, 1, 0, 2), 7)
    assert tlog.tile_in_tree(Tile(2, -1, 1, 2), 6)
    assert not tlog.tile_in_tree(Tile(2, -1, 1, 3), 6)


def test_hash_from_tile_errors(hundred: Storage) -> None:
    tile = Tile(2, 0, 0, 4)
    data = tlog.read_tile_data(tile, hundred)
    with pytest.raises(tlog.TlogError):
        tlog.hash_from_tile(tile, data[:-1], 0)
    with pytest.raises(tlog.TlogError):
        tlog.hash_from_tile(tile, data, tlog.stored_hash_index(0, 4))  # in tile 1
    with pytest.raises(tlog.TlogError):
        tlog.hash_from_tile(Tile(2, 0, 0, 1), data, tlog.stored_hash_index(1, 0))  # too narrow
    # Level-1 hashes are computed from the tile's level-0 row; level 2 is the next tile up.
    assert tlog.hash_from_tile(tile, data, tlog.stored_hash_index(1, 1)) == hundred.hashes[5]
    with pytest.raises(tlog.TlogError):
        tlog.hash_from_tile(tile, data, tlog.stored_hash_index(2, 0))


# --- TileHashReader: the security-critical part -------------------------------------------------


class TileServer:
    """Serves the tiles of a Storage, optionally tampering with them; records what was saved."""

    def __init__(self, s: Storage, tamper: dict[Tile, bytes] | None = None) -> None:
        self.s = s
        self.tamper = tamper or {}
        self.requests: list[Tile] = []
        self.saved: list[Tile] = []

    def read(self, tiles: Sequence[Tile]) -> list[bytes]:
        self.requests.extend(tiles)
        return [self.tamper.get(t, tlog.read_tile_data(t, self.s)) for t in tiles]

    def save(self, tiles: Sequence[Tile], data: Sequence[bytes]) -> None:
        for t, d in zip(tiles, data, strict=True):
            assert d == tlog.read_tile_data(t, self.s), "saved an unauthenticated tile"
        self.saved.extend(tiles)


def _zeroed(server: TileServer, height: int, index: int, tiles: Sequence[Tile]) -> list[bytes]:
    """x/mod's zeroIndex: zero the bytes hash *index* is computed from, in its tile."""
    base = tlog.tile_for_index(height, index)
    level, n = tlog.split_stored_hash_index(index)
    sub_level = level - base.L * height
    within = n - ((base.N << height) >> sub_level)
    start, end = (within << sub_level) * 32, ((within + 1) << sub_level) * 32
    out = []
    for t, d in zip(tiles, server.read(tiles), strict=True):
        if (t.H, t.L, t.N) == (base.H, base.L, base.N) and end <= len(d):
            d = d[:start] + bytes(end - start) + d[end:]
        out.append(d)
    return out


@pytest.mark.parametrize("size", [*range(1, 34), 63, 64, 65, 100])
def test_tile_hash_reader_rejects_every_zeroed_hash(hundred: Storage, size: int) -> None:
    """x/mod's TestTileHashReader: every hash reads correctly, alone and all at once; and with
    any one hash zeroed in its tile, reading it (alone or with all others) fails."""
    height = 2
    tree = Tree(size, tlog.tree_hash(size, hundred))
    server = TileServer(hundred)
    thr = tlog.TileHashReader(tree, height, server.read, server.save)
    limit = tlog.stored_hash_index(0, size)
    everything = list(range(limit))
    assert thr(everything) == hundred.hashes[:limit]
    for i in range(limit):
        assert thr([i]) == [hundred.hashes[i]]
        bad = tlog.TileHashReader(tree, height, lambda ts, i=i: _zeroed(server, height, i, ts))
        with pytest.raises(tlog.InconsistentTile):
            bad([i])
        with pytest.raises(tlog.InconsistentTile):
            bad(everything)


def test_tile_hash_reader_regression_shared_tree_hash_tiles(hundred: Storage) -> None:
    """N=15, height 2: four tree-hash subtrees live in two tiles, so the tile for a requested
    leaf is the third tile fetched. Authentication must start right after the tree-hash tiles
    (not after len(stx) == 4 entries), or a forged tile/2/0/000 would be accepted."""
    tree = Tree(15, tlog.tree_hash(15, hundred))
    plan = tlog.plan_tile_reads(tree, 2, [tlog.stored_hash_index(0, 1)])
    assert [t.path() for t in plan.tiles] == ["tile/2/1/000.p/3", "tile/2/0/003.p/3", "tile/2/0/000"]
    good = [tlog.read_tile_data(t, hundred) for t in plan.tiles]
    assert plan.hashes(good) == [tlog.record_hash(b"leaf 1")]
    forged_leaf = tlog.record_hash(b"evil")
    forged = good[2][:32] + forged_leaf + good[2][64:]
    with pytest.raises(tlog.InconsistentTile):
        plan.hashes([good[0], good[1], forged])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100), st.integers(1, 4), st.data())
def test_property_any_tampered_tile_is_rejected(
    hundred: Storage, size: int, height: int, data: st.DataObject
) -> None:
    """Every tile a read fetches is authenticated, so changing any byte of any of them fails."""
    tree = Tree(size, tlog.tree_hash(size, hundred))
    limit = tlog.stored_hash_index(0, size)
    indexes = data.draw(st.lists(st.integers(0, limit - 1), min_size=1, max_size=5))
    plan = tlog.plan_tile_reads(tree, height, indexes)
    good = [tlog.read_tile_data(t, hundred) for t in plan.tiles]
    assert plan.hashes(good) == [hundred.hashes[i] for i in indexes]
    which = data.draw(st.integers(0, len(good) - 1))
    pos = data.draw(st.integers(0, len(good[which]) - 1))
    bad = list(good)
    bad[which] = good[which][:pos] + bytes([good[which][pos] ^ 0x40]) + good[which][pos + 1 :]
    with pytest.raises(tlog.InconsistentTile):
        plan.hashes(bad)


def test_tile_hash_reader_checks(hundred: Storage) -> None:
    tree = Tree(13, tlog.tree_hash(13, hundred))
    server = TileServer(hundred)
    thr = tlog.TileHashReader(tree, 2, server.read, server.save)
    # Wrong tile length.
    short = tlog.TileHashReader(tree, 2, lambda ts: [d[:-32] or d for d in server.read(ts)])
    with pytest.raises(tlog.TlogError):
        short([0])
    # Wrong number of tiles.
    with pytest.raises(tlog.TlogError):
        tlog.TileHashReader(tree, 2, lambda ts: server.read(ts)[:-1])([0])
    # Tiles of a different tree (a fork) do not match the signed hash.
    other = storage_of([b"other %d" % i for i in range(13)])
    forked = tlog.TileHashReader(tree, 2, TileServer(other).read)
    with pytest.raises(tlog.InconsistentTile):
        forked([0])
    # Nothing is saved before it is authenticated; good reads are saved.
    bad_server = TileServer(hundred, tamper={Tile(2, 0, 0, 4): bytes(128)})
    with pytest.raises(tlog.InconsistentTile):
        tlog.TileHashReader(tree, 2, bad_server.read, bad_server.save)([0])
    assert bad_server.saved == []
    assert thr([0, 5]) == [hundred.hashes[0], hundred.hashes[5]]
    assert server.saved
    # Indexes outside the tree, and the empty tree.
    with pytest.raises(tlog.TlogError):
        thr([tlog.stored_hash_index(0, 13)])
    with pytest.raises(tlog.TlogError):
        thr([-1])
    assert thr([]) == []
    assert tlog.TileHashReader(Tree(0, bytes(32)), 2, server.read)([]) == []
    with pytest.raises(tlog.TlogError):
        tlog.TileHashReader(Tree(0, bytes(32)), 2, server.read)([0])
    with pytest.raises(tlog.TlogError):
        tlog.TileHashReader(tree, 0, server.read)


# --- tree notes ---------------------------------------------------------------------------------

TREE_TEXT = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"


def test_format_tree() -> None:
    tree = Tree(123456789012, tlog.record_hash(b"hello world"))
    assert tlog.format_tree(tree) == TREE_TEXT
    assert tlog.parse_tree(TREE_TEXT) == tree
    assert tlog.parse_tree(TREE_TEXT.encode()) == tree


@pytest.mark.parametrize(
    "bad",
    [
        "not-" + TREE_TEXT,
        "go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        "go.sum database tree\n0123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n+123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n-1\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n9223372036854775808\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=",  # no final newline
        "go.sum database tree\n123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb1=\n",  # non-canonical
        "go.sum database tree\n123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0\n",
        "go.sum database tree\n١٢٣\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree v2\n123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n" + "9" * 5000 + "\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "",
    ],
)
def test_parse_tree_rejects(bad: str) -> None:
    with pytest.raises(tlog.MalformedTree):
        tlog.parse_tree(bad)


def test_parse_tree_ignores_extra_lines() -> None:
    """Forward compatibility, as x/mod: lines after the third are ignored."""
    want = tlog.parse_tree(TREE_TEXT)
    for extra in ["JOE", "JOE\n", "JOE\n" * 1000]:
        assert tlog.parse_tree(TREE_TEXT + extra) == want
    with pytest.raises(tlog.MalformedTree):
        tlog.parse_tree(TREE_TEXT + "x" * tlog.MAX_TREE_TEXT)
    with pytest.raises(tlog.MalformedTree):
        tlog.parse_tree(TREE_TEXT.encode() + b"\xff")


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_property_parse_tree_never_crashes(data: bytes) -> None:
    try:
        tree = tlog.parse_tree(data)
    except tlog.MalformedTree:
        return
    assert tlog.format_tree(tree).encode() == data[: len(tlog.format_tree(tree))]


# --- records and lookups ------------------------------------------------------------------------


def test_format_lookup_record() -> None:
    assert tlog.format_lookup_record(123456789012, b"hello, world\n") == (b"123456789012\nhello, world\n\n")
    for bad in [b"", b"hello\nworld", b"hello\n\nworld\n", b"hello\x01world\n", b"\n", b"\xff\n"]:
        with pytest.raises(tlog.MalformedRecord):
            tlog.format_lookup_record(1, bad)
    with pytest.raises(tlog.MalformedRecord):
        tlog.format_lookup_record(-1, b"x\n")


def test_parse_lookup_record() -> None:
    got = tlog.parse_lookup_record(b"123456789012\nhello, world\n\njunk on end\x01\xff")
    assert got == (123456789012, b"hello, world\n", b"junk on end\x01\xff")
    assert tlog.parse_lookup_record(b"123456789012\nhello, world\n\n") == (
        123456789012,
        b"hello, world\n",
        b"",
    )
    for bad in [
        b"not-123456789012\nhello, world\n\n",
        b"123\nhello\x01world\n\n",
        b"123\nhello\xffworld\n\n",
        b"123\nhello world\n",
        b"0x123\nhello world\n\n",
        b"+123\nhello world\n\n",
        b"0123\nhello world\n\n",
        b"123\n\n\n",
        b"9223372036854775808\nx\n\n",
        b"9" * 5000 + b"\nx\n\n",
        b"",
    ]:
        with pytest.raises(tlog.MalformedRecord):
            tlog.parse_lookup_record(bad)


@settings(max_examples=300)
@given(st.binary(max_size=100))
def test_property_parse_lookup_record_never_crashes(data: bytes) -> None:
    try:
        record_id, text, rest = tlog.parse_lookup_record(data)
    except tlog.MalformedRecord:
        return
    assert tlog.format_lookup_record(record_id, text) + rest == data


ZIP_H1 = "h1:" + base64.b64encode(bytes(range(32))).decode()
MOD_H1 = "h1:" + base64.b64encode(bytes(range(32, 64))).decode()


def test_format_record() -> None:
    text = tlog.format_record("golang.org/x/text", "v0.3.0", ZIP_H1, MOD_H1)
    assert text == (f"golang.org/x/text v0.3.0 {ZIP_H1}\ngolang.org/x/text v0.3.0/go.mod {MOD_H1}\n".encode())
    assert tlog.is_valid_record_text(text)
    for bad in [
        ("", "v1.0.0", ZIP_H1, MOD_H1),
        ("a b", "v1.0.0", ZIP_H1, MOD_H1),
        ("m", "v1.0.0\n", ZIP_H1, MOD_H1),
        ("m", "v1.0.0", "h2:" + ZIP_H1[3:], MOD_H1),
        ("m", "v1.0.0", ZIP_H1, MOD_H1[:-2] + "=="),
        ("m", "v1.0.0", ZIP_H1, MOD_H1[:-2] + "B="),  # non-canonical base64
        ("m", "v1.0.0", ZIP_H1 + " ", MOD_H1),
    ]:
        with pytest.raises(tlog.MalformedRecord):
            tlog.format_record(*bad)


def test_lookup_round_trip() -> None:
    text = tlog.format_record("example.com/m", "v1.2.3", ZIP_H1, MOD_H1)
    skey, vkey = note.generate_key("sum.example.com")
    signed = sumlog.sign_tree(Tree(8, tlog.record_hash(b"x")), note.new_signer(skey))
    body = tlog.format_lookup(7, text, signed)
    assert body.startswith(b"7\n" + text + b"\n")
    assert tlog.parse_lookup(body) == (7, text, signed)
    with pytest.raises(tlog.MalformedRecord):
        tlog.parse_lookup(b"7\n" + text + b"\n")  # no note
    tree, _ = sumlog.open_tree(tlog.parse_lookup(body)[2], [note.new_verifier(vkey)])
    assert tree == Tree(8, tlog.record_hash(b"x"))


def test_format_data_tile() -> None:
    assert tlog.format_data_tile([b"a\nb\n", b"c\n"]) == b"a\nb\n\nc\n\n"
    with pytest.raises(tlog.MalformedRecord):
        tlog.format_data_tile([b"a"])


def test_hash_text_forms() -> None:
    h = tlog.record_hash(b"hello world")
    assert tlog.format_hash(h) == "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0="
    assert tlog.parse_hash(tlog.format_hash(h)) == h
    for bad in [
        "",
        "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0",
        "AAAA",
        "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb1=",
    ]:
        with pytest.raises(tlog.TlogError):
            tlog.parse_hash(bad)
    with pytest.raises(tlog.TlogError):
        tlog.node_hash(h, h[:31])


# --- the append-only log model (sumdb/log.py) ---------------------------------------------------


def test_append_matches_stored_hashes(hundred: Storage) -> None:
    """Appending in batches of any size yields exactly the hashes and trees x/mod's
    one-record-at-a-time StoredHashes does."""
    for batch in [1, 2, 3, 7, 100]:
        persisted: list[bytes] = []
        size = 0

        def read(indexes: Sequence[int], persisted: list[bytes] = persisted) -> list[bytes]:
            return [persisted[i] for i in indexes]

        records = leaves(100)
        while size < 100:
            chunk = records[size : size + batch]
            # ("leaf %d" is not valid record text, so append by record hash.)
            appended = sumlog.append_record_hashes(size, map(tlog.record_hash, chunk), read)
            assert appended.start_index == len(persisted)
            assert appended.record_ids == range(size, size + len(chunk))
            persisted.extend(appended.hashes)
            size += len(chunk)
            assert appended.tree == Tree(size, tlog.tree_hash(size, hundred))
        assert persisted == hundred.hashes


def test_append_nothing(hundred: Storage) -> None:
    appended = sumlog.append_records(13, [], hundred)
    assert appended.hashes == ()
    assert appended.tree == Tree(13, tlog.tree_hash(13, hundred))
    assert sumlog.append_records(0, [], hundred).tree == Tree(0, bytes(32))


def test_append_rejects_bad_records() -> None:
    with pytest.raises(tlog.MalformedRecord):
        sumlog.append_records(0, [b"no newline"], Storage())
    with pytest.raises(tlog.TlogError):
        sumlog.append_records(-1, [b"x\n"], Storage())


def test_append_reads_only_persisted_hashes() -> None:
    persisted: list[bytes] = []
    asked: list[int] = []

    def read(indexes: Sequence[int]) -> list[bytes]:
        asked.extend(indexes)
        return [persisted[i] for i in indexes]

    first = sumlog.append_records(0, [b"a\n", b"b\n", b"c\n"], read)
    assert asked == []  # everything it needed was computed in this batch
    persisted.extend(first.hashes)
    second = sumlog.append_records(3, [b"d\n"], read)
    assert asked and max(asked) < len(persisted)
    assert [t.path() for t in second.new_tiles(2)] == ["tile/2/0/000", "tile/2/1/000.p/1"]


@pytest.fixture
def memlog() -> sumlog.MemoryLog:
    m = sumlog.MemoryLog()
    m.append([b"rec %d\n" % i for i in range(10)])
    m.append([b"rec %d\n" % i for i in range(10, 23)])
    return m


def test_memory_log(memlog: sumlog.MemoryLog) -> None:
    records = [b"rec %d\n" % i for i in range(23)]
    ref = storage_of(records)
    assert memlog.size == 23
    assert memlog.tree() == Tree(23, tlog.tree_hash(23, ref))
    assert memlog.tree_at(10) == Tree(10, tlog.tree_hash(10, ref))
    assert memlog.records(20, 3) == records[20:]
    assert memlog.read_tile(Tile(2, -1, 5, 3)) == b"rec 20\n\nrec 21\n\nrec 22\n\n"
    assert memlog.read_tile(Tile(2, 0, 1, 4)) == tlog.read_tile_data(Tile(2, 0, 1, 4), ref)
    with pytest.raises(tlog.TlogError):
        memlog.read_tile(Tile(2, 0, 5, 4))  # beyond the tree
    with pytest.raises(tlog.TlogError):
        memlog.read_tile(Tile(2, 0, 2, 4), tree_size=10)  # beyond that published tree
    with pytest.raises(tlog.TlogError):
        memlog.records(20, 4)
    proof = memlog.prove_record(4)
    tlog.check_record(proof, 23, memlog.tree().Hash, 4, tlog.record_hash(b"rec 4\n"))
    tlog.check_tree(memlog.prove_tree(10), 23, memlog.tree().Hash, 10, memlog.tree_at(10).Hash)
    with pytest.raises(tlog.MalformedRecord):
        memlog.append([b"ok\n", b"bad"])
    assert memlog.size == 23  # a failed batch changes nothing


def test_client_flow(memlog: sumlog.MemoryLog) -> None:
    """What the sumdb client does with a lookup: open the signed tree, then authenticate the
    record through tiles; and check a newer tree extends an older one."""
    skey, vkey = note.generate_key("sum.example.com")
    signer, verifiers = note.new_signer(skey), [note.new_verifier(vkey)]
    old_tree = memlog.tree_at(10)
    old_note = sumlog.sign_tree(old_tree, signer)
    body = tlog.format_lookup(17, memlog.records(17, 1)[0], sumlog.sign_tree(memlog.tree(), signer))

    record_id, text, signed = tlog.parse_lookup(body)
    tree, _ = sumlog.open_tree(signed, verifiers)
    thr = tlog.TileHashReader(tree, 2, memlog.read_tiles)
    [leaf] = thr([tlog.stored_hash_index(0, record_id)])
    assert leaf == tlog.record_hash(text)
    assert leaf != tlog.record_hash(text.replace(b"17", b"18"))  # a forged record is caught

    older, _ = sumlog.open_tree(old_note, verifiers)
    assert tlog.tree_hash(older.N, thr) == older.Hash  # the new tree extends the old one
    with pytest.raises(note.InvalidSignature):
        sumlog.open_tree(old_note.replace(b"\n10\n", b"\n11\n"), verifiers)
    with pytest.raises(note.UnverifiedNote):
        sumlog.open_tree(old_note, [note.new_verifier(note.generate_key("other")[1])])
