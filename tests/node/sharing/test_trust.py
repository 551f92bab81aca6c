"""Trust.current and Trust.in_force_at reuse a treaty found in force briefly, never across directories."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from intelshare import errors
from node.sharing import trust as trust_module
from tests.node.conftest import TASKFORCE, Cluster


def test_current_is_reused_only_with_the_same_directory_and_briefly(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust = cluster.start_node("nl-customs").node.trust
    doc = trust.current(TASKFORCE)
    now = trust.clock()
    monkeypatch.setattr(trust, "clock", lambda: now)
    assert trust.current(TASKFORCE) is doc
    # From now on no treaty would be found in force.
    monkeypatch.setattr(trust_module, "in_force", lambda *_a: False)
    monkeypatch.setattr(trust, "client", None)  # no asking the gateway
    assert trust.current(TASKFORCE) is doc  # reused: same directory, same moment
    # A later moment: looked at again.
    monkeypatch.setattr(trust, "clock", lambda: now + trust_module.CURRENT_REUSE)
    with pytest.raises(errors.TreatyNotInForce):
        trust.current(TASKFORCE)
    # Found again, then a new directory (e.g. one revoking a party): refused at once.
    monkeypatch.undo()
    doc = trust.current(TASKFORCE)
    now = trust.clock()
    monkeypatch.setattr(trust, "clock", lambda: now + timedelta(milliseconds=1))
    monkeypatch.setattr(trust_module, "in_force", lambda *_a: False)
    monkeypatch.setattr(trust, "client", None)
    trust._directory = copy.copy(trust._directory)
    with pytest.raises(errors.TreatyNotInForce):
        trust.current(TASKFORCE)


def test_in_force_at_reuses_only_in_force_with_the_same_directory_and_briefly(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust = cluster.start_node("nl-customs").node.trust
    doc = trust.current(TASKFORCE)
    directory = trust.directory
    now = trust.clock()
    assert trust.in_force_at(doc, directory, now)
    # From now on the signatures would not hold (say, a party was revoked).
    monkeypatch.setattr(trust_module, "in_force", lambda *_a: False)
    assert trust.in_force_at(doc, directory, now + timedelta(milliseconds=500))  # reused
    # Not before the moment it was found, not after the reuse, not with another directory.
    assert not trust.in_force_at(doc, directory, now - timedelta(milliseconds=1))
    assert not trust.in_force_at(doc, directory, now + trust_module.CURRENT_REUSE)
    assert not trust.in_force_at(doc, copy.copy(directory), now)
    # "Not in force" is never reused.
    monkeypatch.undo()
    assert trust.in_force_at(doc, directory, now)
    # Never at or past the treaty's end, though within the reuse.
    late = doc.treaty.valid_end - timedelta(milliseconds=100)
    monkeypatch.setattr(trust_module, "in_force", lambda *_a: True)
    assert trust.in_force_at(doc, directory, late)
    monkeypatch.setattr(trust_module, "in_force", lambda *_a: False)
    assert trust.in_force_at(doc, directory, late + timedelta(milliseconds=50))
    assert not trust.in_force_at(doc, directory, doc.treaty.valid_end)
