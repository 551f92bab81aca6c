"""`intelshare treaty publish` against a real gateway."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner

import intelshare.cli_treaty  # noqa: F401  (registers the command group)
from intelshare.cli import cli
from tests.gateway.conftest import GatewayEnv


def test_publish_signed_treaty(make_gateway: Callable[..., GatewayEnv]) -> None:
    gw = make_gateway(publish_treaties=False)
    path = gw.fed.treaties["customs-mutual-assistance"]
    identity = gw.fed.agencies["nl-customs"].dir
    result = CliRunner().invoke(
        cli, ["treaty", "publish", str(path), "--gateway", gw.target, "--identity", str(identity)]
    )
    assert result.exit_code == 0, result.output
    assert "in force" in result.output
    with gw.client("de-customs") as c:
        assert [t.treaty.treaty_id for t in c.list_treaties()] == ["customs-mutual-assistance"]


def test_publish_refused_names_the_missing_party(
    make_gateway: Callable[..., GatewayEnv], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from intelshare.devfed import sign_by_parties

    gw = make_gateway(publish_treaties=False)
    treaty = gw.fed.signed_treaty("customs-mutual-assistance").treaty
    partial = sign_by_parties(treaty, gw.fed.agencies, signers=["nl-customs"])
    path = tmp_path / "partial.treaty"
    path.write_bytes(partial.to_bytes())
    identity = gw.fed.agencies["nl-customs"].dir
    result = CliRunner().invoke(
        cli, ["treaty", "publish", str(path), "--gateway", gw.target, "--identity", str(identity)]
    )
    assert result.exit_code == 2
    assert "de-customs" in result.output
    assert "TREATY_NOT_IN_FORCE" in result.output
