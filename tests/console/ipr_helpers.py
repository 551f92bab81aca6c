"""IPR and risk records for the console's tests, made through the nodes' own APIs.

nl-customs grants ACME's recordation (valid for de-customs under the customs
treaty); de-customs detains a container of fake ACME shoes; a rights holder
account for ACME (and one for another holder) is added to de-customs' node.
nl-customs shares a risk profile with de-customs. The records the tests then
look at through the console are made here, never through the console.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf.struct_pb2 import Struct

from intelshare.v1 import detention_pb2, envelope_pb2, recordation_pb2, risk_profile_pb2
from node.cli.ipr_client import IprClient
from node.cli.risk_client import RiskClient
from tests.console.conftest import Federation
from tests.node.api.ipr_fixtures import ACME_KEY, OTHER_KEY, acme, holder_token, shoes
from tests.node.conftest import CUSTOMS, RunningNode, expire_in, wait_for

D = detention_pb2
R = recordation_pb2
P = risk_profile_pb2

#: The criteria of the shared profile: antibiotics from India loaded at Nhava Sheva.
CRITERIA = {
    "all_of": [{"hs_prefix": "3004"}, {"origin_country": ["IN"]}, {"loading_port": "INNSA"}]
}


def ipr(node: RunningNode, role: str = "liaison", token: str | None = None) -> IprClient:
    return IprClient(
        node.target,
        ca_pem=node.ca_pem,
        server_name=node.agency,
        token=token or node.tokens[role],
    )


def risk(node: RunningNode, role: str = "liaison") -> RiskClient:
    return RiskClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=node.tokens[role]
    )


def grant(f: Federation, recordation_id: str = "acme-2026", **over: Any) -> str:
    """nl-customs grants ACME's recordation; returns its name once de-customs holds the copy."""
    with ipr(f.nl) as c:
        granted = c.create_recordation(acme(**over), recordation_id)
    with ipr(f.de, "analyst") as c:

        def arrived() -> bool:
            return any(r.name == granted.name for r in c.all_recordations())

        wait_for(arrived, what=f"{granted.name} at de-customs")
    return str(granted.name)


def detain(f: Federation, *recordations: str, detention_id: str = "hh-0412", **over: Any) -> str:
    """de-customs detains the shoes under ``recordations``; returns the detention's name."""
    with ipr(f.de) as c:
        return str(c.create_detention(shoes(*recordations, **over), detention_id).name)


def notify(f: Federation, name: str) -> D.Detention:
    with ipr(f.de) as c:
        return c.move_detention(name, D.DETENTION_STATE_HOLDER_NOTIFIED, "holder e-mailed")


def holders(f: Federation) -> None:
    """Rights holder accounts at de-customs: ACME's and another holder's."""
    f.de.tokens["rights_holder"] = holder_token(f.de, ACME_KEY, "ACME brand protection")
    f.de.tokens["other_holder"] = holder_token(f.de, OTHER_KEY, "Other brand protection")


def share_profile(f: Federation, **over: Any) -> str:
    """nl-customs writes the profile for de-customs; returns its name once de-customs holds it."""
    criteria = Struct()
    criteria.update(over.pop("criteria", CRITERIA))
    profile = P.RiskProfile(
        title="Counterfeit medicines from IN via INNSA",
        rationale="Three seizures of falsified antibiotics this quarter",
        action=P.RISK_ACTION_PHYSICAL_INSPECTION,
        end_time=expire_in(timedelta(days=30)),
        criteria=criteria,
        handling=envelope_pb2.HANDLING_CODE_H1,
        tlp=envelope_pb2.TLP_AMBER,
        recipients=[P.RiskProfileRecipient(agency_id="de-customs", treaty_id=CUSTOMS)],
        **over,
    )
    with risk(f.nl) as c:
        created = c.create_profile(profile)
    with risk(f.de, "analyst") as c:
        wait_for(
            lambda: any(p.name == created.name for p in c.all_profiles()),
            what="the profile at de-customs",
        )
    return str(created.name)


#: Three declarations: the first is targeted, the second is not, the third has a bad container.
DECLARATIONS_CSV = (
    "reference,hs_code,origin_country,loading_port,discharge_port,transport_mode,containers\n"
    "26DE000000000017,3004901000,IN,INNSA,DEHAM,sea,MSCU1234566\n"
    "26DE000000000018,8504401000,CN,CNSHA,DEHAM,sea,\n"
    "26DE000000000019,3004901000,IN,INNSA,DEHAM,sea,MSCU1234567\n"
)
