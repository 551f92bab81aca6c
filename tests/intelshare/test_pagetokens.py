"""Page tokens are opaque, bound to their listing, filters, caller and time, and unforgeable."""

from __future__ import annotations

import base64

import pytest

from intelshare import errors
from intelshare.pagetokens import PageTokens

KEY = b"k" * 32
ARGS = {"listing": "alerts", "filters": "0:0:0:", "caller": "officer-1"}


def test_a_token_reads_back_its_position_and_shows_nothing_of_it() -> None:
    tokens = PageTokens(KEY)
    token = tokens.issue(**ARGS, position=[1733450000000, "0193-abc"])
    assert tokens.read(token, **ARGS, size=2) == [1733450000000, "0193-abc"]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"0193-abc" not in raw
    assert b"alerts" not in raw
    assert tokens.read("", **ARGS, size=2) is None


def test_an_edited_token_is_refused() -> None:
    tokens = PageTokens(KEY)
    token = tokens.issue(**ARGS, position=[1, "a"])
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[20] ^= 0x01
    edited = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(errors.PageTokenInvalid) as exc:
        tokens.read(edited, **ARGS, size=2)
    assert "page_token" in exc.value.violations
    for garbage in ("garbage!", "e30", "A" * 5000):
        with pytest.raises(errors.PageTokenInvalid):
            tokens.read(garbage, **ARGS, size=2)


def test_another_nodes_token_is_refused() -> None:
    token = PageTokens(b"x" * 32).issue(**ARGS, position=[1, "a"])
    with pytest.raises(errors.PageTokenInvalid, match="not one this node issued"):
        PageTokens(KEY).read(token, **ARGS, size=2)


def test_another_officer_listing_or_filter_set_is_refused() -> None:
    tokens = PageTokens(KEY)
    token = tokens.issue(**ARGS, position=[1, "a"])
    with pytest.raises(errors.PageTokenInvalid, match="another officer"):
        tokens.read(token, **{**ARGS, "caller": "officer-2"}, size=2)
    with pytest.raises(errors.PageTokenInvalid, match="another listing"):
        tokens.read(token, **{**ARGS, "listing": "cases"}, size=2)
    with pytest.raises(errors.PageTokenInvalid, match="filters changed"):
        tokens.read(token, **{**ARGS, "filters": "1:0:0:"}, size=2)


def test_an_old_token_has_expired() -> None:
    now = [1_000_000.0]
    tokens = PageTokens(KEY, lifetime_seconds=60, clock=lambda: now[0])
    token = tokens.issue(**ARGS, position=[1, "a"])
    now[0] += 59
    assert tokens.read(token, **ARGS, size=2) == [1, "a"]
    now[0] += 2
    with pytest.raises(errors.PageTokenExpired):
        tokens.read(token, **ARGS, size=2)
