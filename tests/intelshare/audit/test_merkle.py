"""RFC 9162 Merkle tree: published vectors, exhaustive round trips, properties.

The vectors are the certificate-transparency reference tree of eight leaves
(RFC 6962 and RFC 9162 share the tree), as published by the
transparency-dev/merkle and google/trillian test suites. Beyond them, every
proof of every tree up to 64 leaves is compared with a direct transcription
of the RFC's recursive definitions (an oracle written independently of the
iterative code under test) and checked against mutation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intelshare.audit import merkle


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- the reference tree -------------------------------------------------------------

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# NODES[level][index]: every perfect subtree of the 8-leaf tree.
NODES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# ROOTS[n]: root of the tree of the first n leaves.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# FRONTIERS[n]: the compact tree (perfect-subtree roots, largest first) at size n.
FRONTIERS = [
    [],
    [NODES[0][0]],
    [NODES[1][0]],
    [NODES[1][0], NODES[0][2]],
    [NODES[2][0]],
    [NODES[2][0], NODES[0][4]],
    [NODES[2][0], NODES[1][2]],
    [NODES[2][0], NODES[1][2], NODES[0][6]],
    [NODES[3][0]],
]

# (0-based leaf index, tree size, proof)
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 8, [NODES[0][1], NODES[1][1], NODES[2][1]]),
    (5, 8, [NODES[0][4], NODES[1][3], NODES[2][0]]),
    (2, 3, [NODES[1][0]]),
    (1, 5, [NODES[0][0], NODES[1][1], NODES[0][4]]),
]
# spelled out once, to pin the vectors to the published hex and not only to NODES
assert INCLUSION_VECTORS[2][2][1] == h(
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
)

# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, [NODES[0][1], NODES[1][1], NODES[2][1]]),
    (6, 8, [NODES[1][2], NODES[1][3], NODES[2][0]]),
    (2, 5, [NODES[1][1], NODES[0][4]]),
    (6, 7, [NODES[1][2], NODES[0][6], NODES[2][0]]),
]
assert CONSISTENCY_VECTORS[4][2][1] == h(
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"
)

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- an oracle: the RFC 9162 definitions, transcribed recursively ------------------------


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    if m in (0, len(d)):
        return []
    return ref_subproof(m, d, True)


def entries(n: int) -> list[bytes]:
    return [i.to_bytes(2, "big") * (i % 3 + 1) for i in range(n)]


# --- vectors -------------------------------------------------------------------------


def test_hash_prefixes() -> None:
    assert merkle.leaf_hash(b"") == NODES[0][0]
    assert merkle.node_hash(NODES[0][0], NODES[0][1]) == NODES[1][0]
    assert ROOTS[0] == merkle.EMPTY_ROOT
    assert merkle.HASH_SIZE == 32


def test_leaf_hashes_of_reference_inputs() -> None:
    assert [merkle.leaf_hash(x) for x in LEAF_INPUTS] == NODES[0]


@pytest.mark.parametrize("size", range(9))
def test_reference_roots(size: int) -> None:
    assert merkle.mth(LEAF_INPUTS[:size]) == ROOTS[size]
    assert ref_mth(LEAF_INPUTS[:size]) == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_reference_frontiers(size: int) -> None:
    f = merkle.Frontier()
    for x in LEAF_INPUTS[:size]:
        f.append(merkle.leaf_hash(x))
    assert f.hashes == FRONTIERS[size]
    assert f.root() == ROOTS[size]
    assert merkle.Frontier.decode(size, f.encode()) == f


def test_frontier_reports_every_reference_node() -> None:
    f = merkle.Frontier()
    seen = {}
    for x in LEAF_INPUTS:
        for level, index, node in f.append(merkle.leaf_hash(x)):
            seen[(level, index)] = node
    expected = {(lv, i): node for lv, row in enumerate(NODES) for i, node in enumerate(row)}
    assert seen == expected


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    hashes = NODES[0][:size]
    assert merkle.inclusion_proof(hashes, index) == proof
    assert merkle.verify_inclusion_proof(NODES[0][index], index, size, proof, ROOTS[size])
    assert merkle.root_from_inclusion_proof(NODES[0][index], index, size, proof) == ROOTS[size]


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_reference_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    assert merkle.consistency_proof(NODES[0][:new], old) == proof
    assert merkle.verify_consistency_proof(old, new, ROOTS[old], ROOTS[new], proof)


def inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, merkle.leaf_hash(b"WrongLeaf"), proof),
        (index, size, root, b"short", proof),
        (index, size, merkle.EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        probes.append((index, size, root, leaf, bad))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS[1:])
def test_reference_inclusion_probes_are_rejected(index: int, size: int, proof: list[bytes]) -> None:
    for i, s, root, leaf, p in inclusion_probes(index, size, proof, ROOTS[size], NODES[0][index]):
        assert not merkle.verify_inclusion_proof(leaf, i, s, p, root), (i, s, p)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS[1:])
def test_reference_consistency_probes_are_rejected(old: int, new: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[old], ROOTS[new]
    probes = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, merkle.leaf_hash(b"WrongRoot"), r2, proof),
        (old, new, r1, merkle.leaf_hash(b"WrongRoot"), proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, b""]),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [b"", *proof]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, r1, r2, bad))
    for o, n, a, b, p in probes:
        assert not merkle.verify_consistency_proof(o, n, a, b, p), (o, n, p)


def test_inclusion_edge_cases() -> None:
    leaf = merkle.leaf_hash(b"data")
    assert merkle.verify_inclusion_proof(leaf, 0, 1, [], leaf)
    assert not merkle.verify_inclusion_proof(leaf, 0, 1, [], b"")
    assert not merkle.verify_inclusion_proof(b"", 0, 1, [], leaf)
    for index, size in [(0, 0), (1, 0), (2, 1), (-1, 1), (1, 1)]:
        assert not merkle.verify_inclusion_proof(leaf, index, size, [], leaf)
        assert not merkle.verify_inclusion_proof(SOME_HASH, index, size, [], merkle.EMPTY_ROOT)
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_ranges(3, 3)


def test_consistency_edge_cases() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    empty = merkle.EMPTY_ROOT
    assert merkle.verify_consistency_proof(0, 0, empty, empty, [])
    assert merkle.verify_consistency_proof(0, 5, empty, a, [])
    assert merkle.verify_consistency_proof(1, 1, a, a, [])
    assert not merkle.verify_consistency_proof(0, 3, a, b, [])  # size 0 has the empty root
    assert not merkle.verify_consistency_proof(1, 1, a, b, [])
    assert not merkle.verify_consistency_proof(1, 0, a, b, [])
    assert not merkle.verify_consistency_proof(2, 1, a, b, [])
    assert not merkle.verify_consistency_proof(1, 2, a, b, [])
    assert not merkle.verify_consistency_proof(0, 0, empty, empty, [empty])
    assert not merkle.verify_consistency_proof(0, 1, empty, a, [empty])
    assert not merkle.verify_consistency_proof(1, 1, a, a, [a])
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_ranges(4, 3)


# --- exhaustive round trips ---------------------------------------------------------------

MAX_SIZE = 64
DATA = entries(MAX_SIZE)
HASHES = [merkle.leaf_hash(x) for x in DATA]
ALL_ROOTS = [ref_mth(DATA[:n]) for n in range(MAX_SIZE + 1)]


def test_roots_and_frontiers_up_to_64() -> None:
    f = merkle.Frontier()
    assert f.root() == ALL_ROOTS[0]
    for n in range(1, MAX_SIZE + 1):
        f.append(HASHES[n - 1])
        assert f.root() == ALL_ROOTS[n]
        assert merkle.mth(DATA[:n]) == ALL_ROOTS[n]
        assert merkle.root_from_leaf_hashes(HASHES[:n]) == ALL_ROOTS[n]
        # the frontier holds exactly the roots of the perfect subtrees tiling [0, n)
        assert f.hashes == [ref_mth(DATA[i << lv : (i + 1) << lv]) for lv, i in f.nodes()]
        assert merkle.Frontier.decode(n, f.encode()).root() == ALL_ROOTS[n]


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_every_inclusion_proof(size: int) -> None:
    root = ALL_ROOTS[size]
    for index in range(size):
        proof = merkle.inclusion_proof(HASHES[:size], index)
        assert proof == ref_path(index, DATA[:size])
        leaf = HASHES[index]
        assert merkle.verify_inclusion_proof(leaf, index, size, proof, root)
        # another leaf, another position, or another tree: rejected
        for other in {index - 1, index + 1, index ^ 1, index ^ 2} - {index}:
            if 0 <= other < size:
                assert not merkle.verify_inclusion_proof(leaf, other, size, proof, root)
                assert not merkle.verify_inclusion_proof(HASHES[other], index, size, proof, root)
        for other_size in {size - 1, size + 1, size * 2, size // 2} - {size}:
            if index < other_size <= MAX_SIZE:
                assert not merkle.verify_inclusion_proof(
                    leaf, index, other_size, proof, ALL_ROOTS[other_size]
                )
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            assert not merkle.verify_inclusion_proof(leaf, index, size, bad, root)
        if proof:
            assert not merkle.verify_inclusion_proof(leaf, index, size, proof[:-1], root)
        assert not merkle.verify_inclusion_proof(leaf, index, size, [*proof, root], root)


@pytest.mark.parametrize("new", range(MAX_SIZE + 1))
def test_every_consistency_proof(new: int) -> None:
    new_root = ALL_ROOTS[new]
    for old in range(new + 1):
        proof = merkle.consistency_proof(HASHES[:new], old)
        assert proof == ref_proof(old, DATA[:new])
        old_root = ALL_ROOTS[old]
        assert merkle.verify_consistency_proof(old, new, old_root, new_root, proof)
        if 0 < old < new:
            for other in {old - 1, old + 1} - {0, new}:
                assert not merkle.verify_consistency_proof(
                    other, new, ALL_ROOTS[other], new_root, proof
                )
            for other in {new - 1, new + 1} - {old}:
                if old <= other <= MAX_SIZE:
                    assert not merkle.verify_consistency_proof(
                        old, other, old_root, ALL_ROOTS[other], proof
                    )
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
                assert not merkle.verify_consistency_proof(old, new, old_root, new_root, bad)
            assert not merkle.verify_consistency_proof(old, new, old_root, new_root, proof[:-1])
            assert not merkle.verify_consistency_proof(
                old, new, old_root, new_root, [*proof, new_root]
            )
            assert not merkle.verify_consistency_proof(old, new, new_root, old_root, proof)


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_proof_ranges_need_few_stored_nodes(size: int) -> None:
    """What the database reads: O(log n) perfect subtrees per proof."""
    bound = 2 * size.bit_length()
    for index in range(size):
        assert len(merkle.proof_nodes(merkle.inclusion_ranges(index, size))) <= bound
    for old in range(size + 1):
        assert len(merkle.proof_nodes(merkle.consistency_ranges(old, size))) <= bound


# --- properties -------------------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=150)


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_random_trees_prove_inclusion(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    root = ref_mth(leaves)
    assert merkle.mth(leaves) == root
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(hashes, index)
    assert merkle.verify_inclusion_proof(hashes[index], index, len(leaves), proof, root)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        junk = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != proof[at]))
        bad = [*proof[:at], junk, *proof[at + 1 :]]
        assert not merkle.verify_inclusion_proof(hashes[index], index, len(leaves), bad, root)


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_random_trees_prove_consistency(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    old = data.draw(st.integers(0, len(leaves)))
    proof = merkle.consistency_proof(hashes, old)
    old_root, new_root = merkle.mth(leaves[:old]), merkle.mth(leaves)
    assert merkle.verify_consistency_proof(old, len(leaves), old_root, new_root, proof)
    if proof:
        # the old tree rewritten in place no longer matches
        forged = merkle.mth([b"forged", *leaves[1:old]])
        assert not merkle.verify_consistency_proof(old, len(leaves), forged, new_root, proof)


@given(st.integers(0, 1 << 40), st.integers(0, 1 << 40))
def test_perfect_subtrees_tile_a_range(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    pieces = merkle.perfect_subtrees(start, end)
    pos = start
    for level, index in pieces:
        assert index << level == pos
        pos += 1 << level
    assert pos == end
    assert len(pieces) <= 2 * 41


@given(st.integers(1, 1 << 40), st.data())
def test_right_edge_ranges_use_their_binary_digits(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    for start, end in merkle.inclusion_ranges(index, size):
        pieces = merkle.perfect_subtrees(start, end)
        assert len(pieces) == (end - start).bit_count()
        assert [lv for lv, _ in pieces] == sorted((lv for lv, _ in pieces), reverse=True)


@given(
    st.binary(max_size=40),
    st.integers(-5, 300),
    st.integers(-5, 300),
    st.lists(st.binary(max_size=40), max_size=12),
    st.binary(max_size=40),
)
def test_inclusion_verifier_never_raises(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    assert merkle.verify_inclusion_proof(leaf, index, size, proof, root) in (True, False)


@given(
    st.integers(-5, 300),
    st.integers(-5, 300),
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.lists(st.binary(min_size=32, max_size=32), max_size=12),
)
def test_consistency_verifier_never_raises(
    old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]
) -> None:
    assert merkle.verify_consistency_proof(old, new, r1, r2, proof) in (True, False)


def test_frontier_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="frontier"):
        merkle.Frontier.decode(3, b"\x00" * 32)
    with pytest.raises(ValueError, match="hashes"):
        merkle.Frontier(2, [b"\x00" * 32, b"\x00" * 32])
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.Frontier().append(b"short")
