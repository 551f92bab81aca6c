"""End-to-end screening through gRPC: declarations/s of ``ScreenDeclarations`` on a real node.

``bench/screening.py`` measures the matcher alone. This bench measures what
an officer's ``intelshare screen`` gets: a node process (``node serve``,
its own database, behind a real gateway) holding risk profiles written
through ``CreateRiskProfile``, and a client streaming generated
declarations in batches of 500 over TLS (:meth:`node.cli.risk_client.RiskClient.screen`).
The node validates every declaration again, screens it against the
snapshot of what is in force and stores the hits (one transaction per
batch). Reported: wall-clock declarations/s, the node's CPU seconds per
1,000 declarations, the hits stored, and the time to write the profiles.

``python -m bench.screen_rpc`` (1,000 profiles, 10,000 declarations, on
PostgreSQL when it is reachable, else SQLite; ``--backend`` chooses);
``--quick`` (always SQLite) is the smoke run of
``tests/bench/test_screen_rpc_smoke.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from google.protobuf.struct_pb2 import Struct

from bench import _harness as h
from bench.screening import _declaration, _profile_data, _Universe
from intelshare.v1 import envelope_pb2, risk_profile_pb2
from node.cli.risk_client import RiskClient
from node.cli.screen import to_message
from node.schema.alert import ms_to_ts

P = risk_profile_pb2
AGENCY = "de-customs"


def run(*, quick: bool = False, backend: str | None = None, seed: int = 18) -> dict[str, Any]:
    profiles = 20 if quick else 1_000
    declarations = 500 if quick else 10_000
    chosen = h.pick_backend(backend, quick)
    rng = random.Random(seed)
    u = _Universe(rng)
    treaty = h.treaty("bench-customs", [AGENCY, "nl-customs"], categories=["suspect_shipment"])
    with h.world(chosen, [AGENCY, "nl-customs"], [treaty], nodes=[AGENCY]) as w:
        node = w.start_node(AGENCY, worker=False)
        client = RiskClient(
            node.target,
            ca_pem=w.fed.ca_file.read_bytes(),
            server_name=AGENCY,
            token=w.tokens[AGENCY]["liaison"],
            timeout=60.0,
        )
        with client:
            end = ms_to_ts(int((time.time() + 30 * 86_400) * 1000))
            started = time.perf_counter()
            for i in range(profiles):
                criteria = Struct()
                criteria.update(_profile_data(u))
                client.create_profile(
                    P.RiskProfile(
                        title=f"bench profile {i}",
                        action=P.RISK_ACTION_SCAN,
                        end_time=end,
                        criteria=criteria,
                        handling=envelope_pb2.HANDLING_CODE_H1,
                        tlp=envelope_pb2.TLP_AMBER,
                    )
                )
            write_s = time.perf_counter() - started
            batch = [to_message(_declaration(u, i, []), i + 2) for i in range(declarations)]
            # one warm-up batch builds the snapshot (counted apart)
            warm_started = time.perf_counter()
            list(client.screen(batch[:10]))
            warm_s = time.perf_counter() - warm_started
            cpu0 = node.cpu_seconds()
            started = time.perf_counter()
            results = list(client.screen(batch))
            wall = time.perf_counter() - started
            cpu = node.cpu_seconds() - cpu0
    targeted = sum(1 for r in results if r.targeted)
    return {
        "benchmark": "screen_rpc",
        "quick": quick,
        "backend": chosen,
        "machine": h.machine(),
        "profiles": profiles,
        "declarations": declarations,
        "answers": len(results),
        "errors": sum(1 for r in results if r.errors),
        "targeted": targeted,
        "hits_stored": sum(len(r.hits) for r in results),
        "declarations_per_s": round(declarations / wall, 1),
        "node_cpu_ms_per_1000": round(cpu * 1000 / declarations * 1000, 1),
        "first_batch_s": round(warm_s, 3),
        "profiles_written_per_s": round(profiles / write_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smoke run's sizes")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args(argv)
    print(json.dumps(run(quick=args.quick, backend=args.backend), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
