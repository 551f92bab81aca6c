"""RFC 9162 §2.1 Merkle tree hashing and proofs, as pure functions.

This module knows nothing about storage: it works on leaf hashes and on
*ranges* of leaves, so the same code serves the in-memory reference (tests,
offline verification) and the database-backed log, which keeps the hash of
every perfect subtree and turns a proof into one indexed read.

Vocabulary, following RFC 9162:

* ``leaf_hash(d) = SHA-256(0x00 || d)`` and
  ``node_hash(l, r) = SHA-256(0x01 || l || r)``. The distinct prefixes make a
  leaf impossible to pass off as an interior node (second-preimage attack).
* The tree over ``n`` leaves splits at ``k``, the largest power of two below
  ``n``: the left part is always a *perfect* subtree of ``k`` leaves, the
  right part holds the rest. Every subtree that a proof mentions is therefore
  either perfect (``2**level`` leaves starting at ``index * 2**level``) or a
  right edge ``[start, n)`` whose hash folds the perfect subtrees that tile it.
* A :class:`Frontier` is that tiling for ``[0, n)``: the roots of the perfect
  subtrees given by the binary digits of ``n``, largest first. Appending a
  leaf touches only the trailing ones of ``n`` (O(log n)), and the root is a
  fold of at most ``log2(n) + 1`` hashes.

Verification functions return ``bool`` and never raise on adversarial input
(wrong lengths, wrong sizes, garbage): a proof either verifies or it does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
"""Length of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the empty tree: the hash of the empty string (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Range = tuple[int, int]
"""Half-open leaf range ``[start, end)`` of a subtree."""

NodeId = tuple[int, int]
"""A perfect subtree as ``(level, index)``: leaves ``[index << level, (index + 1) << level)``."""


def leaf_hash(data: bytes) -> bytes:
    """Hash of one log entry: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- tree hash ----------------------------------------------------------------


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH over leaves given by their leaf hashes, in O(n) time and O(log n) memory."""
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    return frontier.root()


def mth(entries: Iterable[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of entries (RFC 9162 §2.1.1)."""
    return root_from_leaf_hashes(leaf_hash(e) for e in entries)


def combine(hashes: Sequence[bytes]) -> bytes:
    """Fold the perfect-subtree roots that tile a range, largest first, into its hash.

    In RFC 9162 the left child is always the largest perfect subtree, so a
    range tiled by perfect subtrees ``p1, p2, ..., pk`` (descending sizes)
    hashes to ``H(p1, H(p2, ... H(pk-1, pk)))``: fold from the right.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# --- which subtrees a proof needs ----------------------------------------------


def perfect_subtrees(start: int, end: int) -> list[NodeId]:
    """Tile ``[start, end)`` with the perfect subtrees an RFC 9162 tree uses, largest first.

    Each piece is as large as both the remaining length and the alignment of
    its start allow. For every subtree that occurs in an RFC 9162 tree (the
    only ranges the proofs below produce) this is exactly its own structure.
    """
    if not 0 <= start <= end:
        raise ValueError(f"bad range [{start}, {end})")
    out: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        out.append((level, start >> level))
        start += 1 << level
    return out


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Leaf ranges of the subtrees in the inclusion proof of ``index`` (RFC 9162 §2.1.3.1).

    Ordered as the proof is: from the sibling next to the leaf up to the
    sibling next to the root.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    out: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """Leaf ranges of the subtrees in the consistency proof old→new (RFC 9162 §2.1.4.1).

    Empty when ``old_size`` is 0 or equal to ``new_size``: there is nothing
    to prove then.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[Range] = []
    start, end, m = 0, new_size, old_size
    whole_old_tree = True  # SUBPROOF's flag b: the old root itself is known
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        out.append((start, end))
    out.reverse()
    return out


def proof_nodes(ranges: Iterable[Range]) -> list[NodeId]:
    """Every perfect subtree needed to hash ``ranges`` (without duplicates, in order)."""
    seen: dict[NodeId, None] = {}
    for start, end in ranges:
        for node in perfect_subtrees(start, end):
            seen.setdefault(node, None)
    return list(seen)


def hash_ranges(ranges: Iterable[Range], lookup: Callable[[NodeId], bytes]) -> list[bytes]:
    """Hashes of ``ranges`` from the perfect-subtree hashes ``lookup`` returns."""
    return [combine([lookup(n) for n in perfect_subtrees(s, e)]) for s, e in ranges]


# --- proofs over an in-memory list of leaf hashes -------------------------------


class _Levels:
    """All perfect-subtree hashes of a list of leaf hashes (reference, O(n) memory)."""

    def __init__(self, hashes: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(hashes)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    def __call__(self, node: NodeId) -> bytes:
        level, index = node
        return self.levels[level][index]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the tree of all ``leaf_hashes``."""
    return hash_ranges(inclusion_ranges(index, len(leaf_hashes)), _Levels(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Consistency proof from the first ``old_size`` leaves to all ``leaf_hashes``."""
    return hash_ranges(consistency_ranges(old_size, len(leaf_hashes)), _Levels(leaf_hashes))


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------------


def _well_formed(hashes: Iterable[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root that ``proof`` implies for leaf hash ``leaf`` at ``index``, or None.

    None when the proof cannot belong to that position in a tree of that
    size (wrong length, malformed element, index out of range).
    """
    if not (0 <= index < size) or not _well_formed([leaf, *proof]):
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``."""
    got = root_from_inclusion_proof(leaf, index, size, proof)
    return got is not None and got == root


def verify_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree ``(old_size, old_root)`` is a prefix of the new one.

    Size 0 is consistent with everything (with the empty proof) only if its
    root is the empty-tree hash; equal sizes need equal roots and no proof.
    """
    if not (0 <= old_size <= new_size) or not _well_formed([old_root, new_root, *proof]):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node itself
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# --- compact frontier ----------------------------------------------------------


@dataclass
class Frontier:
    """The roots of the perfect subtrees that tile ``[0, size)``, largest first.

    This is all the state an appender needs: appending merges the new leaf
    with the trailing perfect subtrees of equal size (one per trailing 1-bit
    of ``size``) and reports every perfect subtree it completes, so a store
    can keep them for proofs. ``root()`` folds the frontier.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a frontier of size {self.size} has {self.size.bit_count()} hashes, "
                f"not {len(self.hashes)}"
            )
        if not _well_formed(self.hashes):
            raise ValueError("frontier hashes must be 32 bytes each")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; return the perfect subtrees completed, as ``(level, index, hash)``.

        The first is the leaf itself at level 0, then each merge upwards.
        """
        if not _well_formed([leaf]):
            raise ValueError("a leaf hash is 32 bytes")
        position = self.size
        completed = [(0, position, leaf)]
        h = leaf
        level = 0
        while (position >> level) & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            completed.append((level, position >> level, h))
        self.hashes.append(h)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """The tree's root hash (the empty-tree hash when size is 0)."""
        return combine(self.hashes)

    def nodes(self) -> list[NodeId]:
        """The ``(level, index)`` of each frontier hash, in order."""
        return perfect_subtrees(0, self.size)

    def encode(self) -> bytes:
        """The hashes concatenated, for storage next to ``size``."""
        return b"".join(self.hashes)

    @classmethod
    def decode(cls, size: int, data: bytes) -> Frontier:
        """Inverse of :meth:`encode`; ValueError when ``data`` does not fit ``size``."""
        if size < 0 or len(data) != size.bit_count() * HASH_SIZE:
            raise ValueError(f"{len(data)} bytes are not a frontier of size {size}")
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))
