"""Redaction: keep only the fields a treaty permits, and check a record against it.

The sending node redacts before sealing (:func:`redact`); the receiving node
checks again (:func:`check_fields`) and refuses rather than silently fixing
a record that carries more than the treaty allows.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Final

from intelshare import errors
from intelshare.treaty.decisions import Decision
from intelshare.treaty.model import Treaty


class _Node:
    """A trie of permitted path segments; ``whole`` keeps the sub-tree entirely."""

    __slots__ = ("children", "whole")

    def __init__(self) -> None:
        self.whole = False
        self.children: dict[str, _Node] = {}


def _trie(paths: Iterable[str]) -> _Node:
    root = _Node()
    for path in paths:
        node = root
        for segment in path.split("."):
            node = node.children.setdefault(segment, _Node())
        node.whole = True
    return root


_DROP: Final = object()


def _prune(value: object, node: _Node) -> object:
    if node.whole:
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        kept: dict[str, object] = {}
        for key, sub in value.items():
            child = node.children.get(key) if isinstance(key, str) else None
            if child is None:
                continue
            pruned = _prune(sub, child)
            if pruned is not _DROP:
                kept[key] = pruned
        return kept if kept else _DROP
    if isinstance(value, list | tuple):
        items = [p for p in (_prune(item, node) for item in value) if p is not _DROP]
        return items if items else _DROP
    # a scalar where the allow-list only permits some of its sub-fields
    return _DROP


def redact(record: Mapping[str, Any], treaty: Treaty, kind: str) -> dict[str, Any]:
    """A copy of ``record`` with only the fields ``treaty`` permits for ``kind``.

    A path names a key at each level; lists are transparent, so
    ``subjects.persons.name`` keeps ``name`` in every element of the list
    ``subjects.persons``. A path that ends on a sub-tree keeps it whole.
    Everything else disappears, including containers left empty by the
    filtering (an empty element would still reveal that something was
    there). No permitted path for ``kind`` (or a control kind) gives ``{}``.
    The input is never mutated and the result shares nothing with it.
    """
    paths = treaty.fields.get(kind, ())
    if not paths:
        return {}
    pruned = _prune(record, _trie(paths))
    return pruned if isinstance(pruned, dict) else {}


def _leaf_paths(value: object, prefix: tuple[str, ...]) -> Iterable[tuple[str, ...]]:
    if isinstance(value, Mapping) and value:
        for key, sub in value.items():
            yield from _leaf_paths(sub, (*prefix, str(key)))
    elif isinstance(value, list | tuple) and value:
        for item in value:
            yield from _leaf_paths(item, prefix)
    else:
        yield prefix


def unpermitted_paths(record: Mapping[str, Any], treaty: Treaty, kind: str) -> list[str]:
    """Dotted paths present in ``record`` that ``treaty`` does not permit for ``kind``.

    Sorted and unique; list positions are folded away (``subjects.persons.dob``).
    """
    allowed = [tuple(p.split(".")) for p in treaty.fields.get(kind, ())]
    bad = {
        ".".join(leaf)
        for leaf in _leaf_paths(record, ())
        if leaf and not any(leaf[: len(p)] == p for p in allowed)
    }
    return sorted(bad)


def check_fields(record: Mapping[str, Any], treaty: Treaty, kind: str) -> Decision:
    """Refuse (``FIELD_NOT_PERMITTED``) a record carrying a field the treaty does not allow.

    For the receiving node, which checks again what the sender should have
    redacted: a record that needed redaction was sent by a node that broke
    the treaty, which is worth a refusal and an audit entry, not a silent fix.
    """
    bad = unpermitted_paths(record, treaty, kind)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return Decision.refuse(
            errors.FieldNotPermitted,
            f"treaty {treaty.label} does not permit field {bad[0]} in a {kind}{more}",
        )
    return Decision.allow(f"every field is permitted by treaty {treaty.label}")
