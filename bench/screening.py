"""Declaration screening: the indexed matcher beside the naive loop over every profile.

Run ``.venv/bin/python -m bench.screening`` (``--quick`` for a smoke run,
``--json`` for machine-readable output).

What it measures, on one core (the matchers are single-threaded Python):

- **declarations/s** screened by :class:`node.targeting.matcher.IndexedMatcher`
  against 1,000 profiles in force and a watch list of 10,000 alert subjects,
  beside :class:`~node.targeting.matcher.NaiveMatcher` (every profile tested,
  every watched key compared) on the same profiles, subjects and declarations,
  in the same run. Target: ≥ 20,000 declarations/s indexed.
- **the cost at 100, 1,000 and 10,000 profiles** (10,000 subjects each): the
  indexed rate should stay flat (at 10,000 profiles at least 0.67 of the rate
  at 100, the threshold the other "flat" figures of ``bench/`` use), where the
  naive rate falls with the number of profiles.
- what comes around it: parsing criteria, building the index, and reading
  declarations from CSV (``node.targeting.declarations``; check digits
  validated with python-stdnum), which a screening of a file also pays.

Inputs are generated from a fixed seed: profiles of the shapes officers write
(HS heading + origin + port; HS + value per kg; consignor or consignee; a list
of GTINs; container owner + origin; an ``any_of`` over chapters and dispatch
countries; 1 % on numeric bounds only, keyed by bisection), declarations
of which a few carry a watched identifier or a profile's values. Time is CPU
time of this process (``time.process_time``), best of several rounds, and
both matchers' answers are compared on the naive batch (``agree``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from stdnum import ean, imo, iso6346

from node.targeting.criteria import parse_criteria
from node.targeting.declarations import Declaration, Parsed, read_csv
from node.targeting.matcher import IndexedMatcher, NaiveMatcher, Profile

PROFILE_COUNTS = (100, 1_000, 10_000)
MAIN_PROFILES = 1_000
SUBJECTS = 10_000
TARGET_RATE = 20_000
FLAT_RATIO = 0.67

_clock = time.process_time

_COUNTRIES = [
    "NL",
    "DE",
    "BE",
    "FR",
    "IT",
    "ES",
    "PL",
    "AT",
    "CZ",
    "DK",
    "SE",
    "FI",
    "IE",
    "PT",
    "GR",
    "HU",
    "RO",
    "BG",
    "HR",
    "SI",
    "SK",
    "LT",
    "LV",
    "EE",
    "LU",
    "CN",
    "IN",
    "US",
    "TR",
    "VN",
    "BD",
    "PK",
    "TH",
    "MY",
    "ID",
    "JP",
    "KR",
    "TW",
    "BR",
    "MX",
    "AR",
    "CO",
    "ZA",
    "NG",
    "EG",
    "MA",
    "AE",
    "SA",
    "IL",
    "UA",
    "GB",
    "CH",
    "NO",
    "RU",
    "KZ",
    "AU",
    "NZ",
    "CA",
    "SG",
    "HK",
    "PH",
    "LK",
]
_MODES = ("sea", "road", "air", "rail", "post", "inland_waterway")


class _Universe:
    """The values profiles and declarations are drawn from (seeded)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.headings = sorted(
            {f"{rng.randint(1, 97):02d}{rng.randint(1, 99):02d}" for _ in range(1_500)}
        )
        self.ports = sorted(
            {
                c + "".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(3))
                for c in _COUNTRIES
                for _ in range(4)
            }
        )
        self.owners = sorted(
            {"".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"}
            | {
                "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"
                for _ in range(600)
            }
        )
        # traders: many, as at a real port (a profile names a few of them)
        self.companies = [f"company:trader {i:06d}" for i in range(100_000)]
        self.eoris = [f"eori:{c}{i:09d}" for i, c in enumerate(_COUNTRIES * 1_613)]

        #: (HS heading, origin, port) of profiles: a few declarations look like one
        self.lures: list[tuple[str, str, str]] = []

    def hs_code(self) -> str:
        return self.rng.choice(self.headings) + f"{self.rng.randint(0, 9999):04d}"

    def container(self) -> str:
        body = self.rng.choice(self.owners) + f"{self.rng.randint(0, 999_999):06d}"
        return body + iso6346.calc_check_digit(body)

    def gtin(self) -> str:
        body = f"{self.rng.randint(0, 10**12 - 1):012d}"
        return (body + ean.calc_check_digit(body)).zfill(14)

    def imo(self) -> str:
        body = f"{self.rng.randint(100_000, 999_999):06d}"
        return body + imo.calc_check_digit(body)

    def party(self) -> str:
        return self.rng.choice(self.companies if self.rng.random() < 0.5 else self.eoris)


def _profile_data(u: _Universe) -> dict[str, Any]:
    rng = u.rng
    shape = rng.random()
    if shape < 0.35:
        heading, port = rng.choice(u.headings), rng.choice(u.ports)
        origins = rng.sample(_COUNTRIES, rng.randint(1, 3))
        conditions: list[dict[str, Any]] = [{"hs_prefix": heading}, {"origin_country": origins}]
        if rng.random() < 0.5:
            conditions.append({"loading_port": port})
        u.lures.append((heading, origins[0], port))
        return {"all_of": conditions}
    if shape < 0.55:
        heading = rng.choice(u.headings)
        return {
            "all_of": [
                {"hs_prefix": [heading + f"{rng.randint(0, 99):02d}", heading]},
                {"value_per_kg_below": round(rng.uniform(0.5, 20), 2)},
            ]
        }
    if shape < 0.7:
        return {
            "any_of": [
                {"consignor": [u.party() for _ in range(rng.randint(1, 3))]},
                {"consignee": [u.party() for _ in range(rng.randint(1, 3))]},
            ]
        }
    if shape < 0.8:
        return {"all_of": [{"gtin": [u.gtin() for _ in range(rng.randint(1, 20))]}]}
    if shape < 0.9:
        return {
            "all_of": [
                {"container_owner_prefix": rng.choice(u.owners)},
                {"origin_country": rng.choice(_COUNTRIES)},
                {"transport_mode": "sea"},
            ]
        }
    if shape < 0.99:
        return {
            "any_of": [
                {
                    "all_of": [
                        {"hs_prefix": rng.choice(u.headings)},
                        {"dispatch_country": rng.choice(_COUNTRIES)},
                        {"quantity_above": rng.randint(100, 10_000)},
                    ]
                },
                {
                    "all_of": [
                        {"hs_prefix": rng.choice(u.headings)},
                        {"discharge_port": rng.choice(u.ports)},
                    ]
                },
            ]
        }
    return {"any_of": [{"quantity_above": rng.randint(10**6, 10**7)}]}


def _subjects(u: _Universe, count: int) -> dict[str, list[str]]:
    """Alert subjects: mostly containers, then parties, persons, vessels, vehicles.

    Watched parties are drawn from their own pool: a company named in an
    alert is not one of the everyday traders (1 in 20 is).
    """
    rng = u.rng
    watch: dict[str, list[str]] = {}
    makers: list[Callable[[], str]] = [
        lambda: f"iso6346:{u.container()}",
        lambda: f"imo:{u.imo()}",
        lambda: f"plate:{rng.choice(_COUNTRIES)}:{rng.randint(10**5, 10**6):d}AB",
        lambda: u.party() if rng.random() < 0.05 else f"company:suspect {rng.randint(0, 10**9)}",
        lambda: f"passport:{rng.choice(_COUNTRIES)}:X{rng.randint(10**7, 10**8):d}",
    ]
    weights = (0.4, 0.1, 0.1, 0.2, 0.2)
    i = 0
    while len(watch) < count:
        key = rng.choices(makers, weights)[0]()
        watch.setdefault(key, []).append(f"alerts/a{i}")
        i += 1
    return watch


def _declaration(u: _Universe, i: int, watched: Sequence[str]) -> Declaration:
    rng = u.rng
    containers = tuple(u.container() for _ in range(rng.choice((0, 1, 1, 1, 2, 3))))
    vessel = u.imo() if rng.random() < 0.5 else ""
    if watched and rng.random() < 0.01:  # now and then a watched container or vessel comes by
        key = rng.choice(watched)
        if key.startswith("iso6346:"):
            containers += (key.split(":", 1)[1],)
        elif key.startswith("imo:"):
            vessel = key.split(":", 1)[1]
    mass = round(rng.uniform(1, 20_000), 1)
    hs_code, origin, port = u.hs_code(), rng.choice(_COUNTRIES), rng.choice(u.ports)
    if u.lures and rng.random() < 0.01:  # and now and then goods that a profile describes
        heading, origin, port = rng.choice(u.lures)
        hs_code = heading + hs_code[4:]
    return Declaration(
        reference=f"MRN{i:09d}",
        hs_code=hs_code,
        origin_country=origin,
        dispatch_country=rng.choice(_COUNTRIES),
        loading_port=port,
        discharge_port=rng.choice(u.ports),
        transport_mode=rng.choice(_MODES),
        consignor=(u.party(),),
        consignee=(u.party(),),
        containers=containers,
        gtins=tuple(u.gtin() for _ in range(rng.choice((0, 0, 1, 2)))),
        vessel_imo=vessel,
        value=round(mass * rng.uniform(0.2, 200), 2),
        net_mass_kg=mass,
        quantity=float(rng.randint(1, 5_000)),
    )


def _rate(
    screen: Callable[[Declaration], object], batch: Sequence[Declaration], rounds: int
) -> float:
    """Declarations per CPU second, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        start = _clock()
        for declaration in batch:
            screen(declaration)
        best = min(best, _clock() - start)
    return len(batch) / best if best > 0 else float("inf")


def _csv_text(batch: Sequence[Declaration]) -> bytes:
    out = io.StringIO()
    out.write(
        "reference,hs_code,origin_country,dispatch_country,loading_port,discharge_port,"
        "transport_mode,consignor_name,consignee_eori,containers,gtins,vessel_imo,value,"
        "net_mass_kg,quantity\n"
    )
    for d in batch:
        eori = d.consignee[0].split(":", 1)[1] if d.consignee[0].startswith("eori:") else ""
        name = d.consignor[0].split(":", 1)[1] if d.consignor[0].startswith("company:") else ""
        out.write(
            f"{d.reference},{d.hs_code},{d.origin_country},{d.dispatch_country},"
            f"{d.loading_port},{d.discharge_port},{d.transport_mode},{name},{eori},"
            f"{';'.join(d.containers)},{';'.join(d.gtins)},{d.vessel_imo},{d.value},"
            f"{d.net_mass_kg},{d.quantity}\n"
        )
    return out.getvalue().encode()


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run(*, quick: bool = False, seed: int = 18) -> dict[str, Any]:
    """Every figure of the module's docstring, as a JSON-able dict."""
    rng = random.Random(seed)
    u = _Universe(rng)
    counts = (10, 50, 200) if quick else PROFILE_COUNTS
    main_count = 50 if quick else MAIN_PROFILES
    subject_count = 200 if quick else SUBJECTS
    batch_size = 300 if quick else 20_000
    naive_size = 30 if quick else 400
    rounds = 1 if quick else 3

    datas = [_profile_data(u) for _ in range(max(*counts, main_count))]
    start = _clock()
    parsed = [parse_criteria(data) for data in datas]
    parse_us = (_clock() - start) / len(datas) * 1e6
    profiles = [Profile(f"risk_profiles/{i}", c) for i, c in enumerate(parsed)]
    watch = _subjects(u, subject_count)
    watched = list(watch)
    batch = [_declaration(u, i, watched) for i in range(batch_size)]
    naive_batch = batch[:naive_size]

    scale: list[dict[str, Any]] = []
    main: dict[str, Any] = {}
    for count in sorted({*counts, main_count}):
        chosen = profiles[:count]
        start = _clock()
        indexed = IndexedMatcher(chosen, watch)
        build_ms = (_clock() - start) * 1e3
        naive = NaiveMatcher(chosen, watch)
        answers = [indexed.screen(d) for d in batch]
        agree = all(naive.screen(d) == answers[i] for i, d in enumerate(naive_batch))
        row = {
            "profiles": count,
            "subjects": len(watch),
            "indexed_per_s": round(_rate(indexed.screen, batch, rounds)),
            "naive_per_s": round(_rate(naive.screen, naive_batch, rounds), 1),
            "build_ms": round(build_ms, 1),
            "bound_keys": indexed.bound_keys,
            "pair_keys": indexed.pair_keys,
            "guarded_profiles": indexed.guarded_keys,
            "targeted_by_profiles": sum(1 for a in answers if a.profiles),
            "targeted_by_subjects": sum(1 for a in answers if a.subjects),
            "declarations": len(batch),
            "agree": agree,
        }
        row["speedup"] = round(row["indexed_per_s"] / row["naive_per_s"], 1)
        if count in counts:
            scale.append(row)
        if count == main_count:
            main = row

    csv_bytes = _csv_text(batch[: min(len(batch), 5_000)])
    start = _clock()
    read = [item for item in read_csv(io.BytesIO(csv_bytes)) if isinstance(item, Parsed)]
    read_s = _clock() - start
    flat = scale[-1]["indexed_per_s"] / scale[0]["indexed_per_s"]
    return {
        "benchmark": "screening",
        "quick": quick,
        "machine": machine(),
        "seed": seed,
        "targets": {"indexed_per_s": TARGET_RATE, "flat_ratio": FLAT_RATIO},
        "main": main,
        "scale": scale,
        "flat_ratio": round(flat, 3),
        "parse_criteria_us": round(parse_us, 1),
        "read_csv_per_s": round(len(read) / read_s) if read_s > 0 else None,
        "read_csv_rows": len(read),
        "met": {
            "rate": main["indexed_per_s"] >= TARGET_RATE,
            "flat": flat >= FLAT_RATIO,
        },
    }


def format_table(r: dict[str, Any]) -> str:
    title = "Screening (QUICK: figures meaningless)" if r["quick"] else "Screening"
    lines = [
        title,
        "",
        "| profiles | subjects | indexed decl/s | naive decl/s | indexed / naive | build ms | "
        "pair / bound keys | guarded | targeted (profiles / subjects) | agree |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in r["scale"]:
        lines.append(
            f"| {row['profiles']:,} | {row['subjects']:,} | {row['indexed_per_s']:,} | "
            f"{row['naive_per_s']:,} | {row['speedup']:,} | {row['build_ms']} | "
            f"{row['pair_keys']} / {row['bound_keys']} | {row['guarded_profiles']} | "
            f"{row['targeted_by_profiles']} / "
            f"{row['targeted_by_subjects']} of {row['declarations']:,} | "
            f"{'yes' if row['agree'] else '**no**'} |"
        )
    return "\n".join(lines)


def report(r: dict[str, Any]) -> str:
    """A Markdown section for these results."""
    main, t = r["main"], r["targets"]
    first, last = r["scale"][0], r["scale"][-1]
    return "\n".join(
        [
            "## Declaration screening, indexed against the naive loop (bench/screening.py)",
            "",
            "```",
            ".venv/bin/python -m bench.screening           # about a minute",
            ".venv/bin/python -m bench.screening --quick   # smoke run, figures meaningless",
            "```",
            "",
            format_table(r).split("\n", 2)[2],
            "",
            f"- {main['profiles']:,} profiles, {main['subjects']:,} subjects: "
            f"**{main['indexed_per_s']:,} declarations/s** indexed (target ≥ "
            f"{t['indexed_per_s']:,}: {'met' if r['met']['rate'] else '**missed**'}), "
            f"{main['naive_per_s']:,}/s naive, {main['speedup']}x.",
            f"- {last['profiles']:,} against {first['profiles']:,} profiles: "
            f"{r['flat_ratio']} of the rate (flat means ≥ {t['flat_ratio']}: "
            f"{'met' if r['met']['flat'] else '**missed**'}).",
            f"- Parsing criteria: {r['parse_criteria_us']} µs a profile; reading CSV "
            f"(check digits validated): {r['read_csv_per_s']:,} declarations/s.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, figures meaningless")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    result = run(quick=args.quick, seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
