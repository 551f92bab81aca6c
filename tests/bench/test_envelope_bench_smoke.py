"""The envelope bench still runs and reports what the README table is built from.

Timings are not asserted: a test machine is not a benchmark machine. The
quick mode calls every operation and primitive a few times, so a bench that
would crash or report nonsense structure is caught here, not the day
someone wants figures.
"""

from __future__ import annotations

import json

import pytest

from bench import envelope as bench_envelope


def test_quick_run_reports_every_case_with_ratios() -> None:
    report = bench_envelope.run(quick=True)
    assert report["benchmark"] == "envelope"
    assert report["quick"] is True
    assert report["target_ratio"] == 1.3
    assert {"cpu", "nproc", "python", "cryptography", "openssl", "date"} <= set(report["machine"])
    cases = report["cases"]
    assert [(c["recipients"], c["payload_bytes"]) for c in cases] == [
        (n, size) for size in bench_envelope.PAYLOAD_SIZES for n in bench_envelope.RECIPIENT_COUNTS
    ]
    for case in cases:
        assert case["envelope_bytes"] > case["payload_bytes"]
        for operation in ("seal", "open", "verify"):
            figures = case[operation]
            assert set(figures) == {"per_second", "us", "primitives_us", "ratio"}
            assert figures["us"] > 0
            assert figures["primitives_us"] > 0
            assert figures["ratio"] > 0
        assert set(case["primitives_us"]) >= {
            "ed25519_sign",
            "ed25519_verify",
            "hpke_wrap",
            "hpke_unwrap",
            "aes_gcm_encrypt",
            "aes_gcm_decrypt",
            "sha256_signed_parts",
        }
    table = bench_envelope.format_table(report)
    assert "QUICK" in table
    assert table.count("\n| ") == len(cases) + 1  # header row plus one per case


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_envelope.main(["--quick", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["quick"] is True
    assert len(printed["cases"]) == len(bench_envelope.RECIPIENT_COUNTS) * len(
        bench_envelope.PAYLOAD_SIZES
    )
