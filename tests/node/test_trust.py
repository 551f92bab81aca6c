"""Trust.current reuses a treaty found in force briefly, never across directories."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from intelshare import errors
from node import trust as trust_module
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
