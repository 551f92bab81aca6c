"""A sender's retry gets the first receipt, even once the envelope would be refused.

A node that lost the answer to a submit (crash, network) retries the same
envelope, possibly much later: by then the directory or treaties may have
changed so that the envelope would no longer be admitted. The gateway still
answers with the receipt it issued the first time, because the message *was*
accepted; it delivers nothing twice, and a different envelope under the same
id is still refused.
"""

from __future__ import annotations

import pytest

from intelshare import errors
from tests.gateway.conftest import GatewayEnv


def test_retry_after_recipient_revoked_gets_first_receipt(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["be-police"])
    other = gw.seal("nl-customs", ["be-police"])  # sealed while be-police was active
    with gw.client("nl-customs") as nl:
        first = nl.submit(env)
        gw.fed.federation.revoke("be-police")
        assert nl.publish_directory(gw.fed.federation.publish_directory()) == 2
        again = nl.submit(env)  # would now be AGENCY_NOT_ACTIVE
        assert again.duplicate
        assert again.receipt == first.receipt
        # Only the very envelope accepted before gets a receipt; a new one is refused.
        with pytest.raises(errors.AgencyNotActive):
            nl.submit(other)


def test_retry_by_another_agency_gets_no_receipt(gw: GatewayEnv) -> None:
    env = gw.seal("nl-customs", ["de-customs"], treaty="customs-mutual-assistance")
    with gw.client("nl-customs") as nl:
        nl.submit(env)
    with gw.client("de-customs") as de, pytest.raises(errors.SenderMismatch):
        de.submit(env)
