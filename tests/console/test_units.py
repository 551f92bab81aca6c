"""The console's pieces without a federation: config, the form, the pinned htmx, the command."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from console import forms
from console.config import load_config
from console.display import record_link
from console.views.live import message
from intelshare.errors import ConfigError

STATIC = Path(__file__).resolve().parents[2] / "console" / "static"

#: htmx as shipped: ``npm pack htmx.org@2.0.11``, package/dist/htmx.min.js, unchanged.
HTMX_VERSION = "2.0.11"
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


def test_htmx_is_the_pinned_release() -> None:
    data = (STATIC / "htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert f'version:"{HTMX_VERSION}"'.encode() in data


@pytest.mark.parametrize(
    ("name", "page"),
    [
        ("alerts/01AB", "/alerts/01AB"),
        ("recordations/acme-2026", "/recordations/acme-2026"),
        ("detentions/hh-0412", "/detentions/hh-0412"),
        ("riskHits/01CD", "/hits/01CD"),
        ("riskProfiles/01EF", "/profiles/01EF"),
        ("cases/01GH/entries/01IJ", "/cases/01GH"),  # an entry has no page: its case
        ("detentionReports/01KL", ""),  # no console page by that name
        ("alerts/01AB/deliveries/de-customs", ""),
    ],
)
def test_a_related_record_links_to_its_console_page(name: str, page: str) -> None:
    assert record_link(name) == page


def test_config_from_yaml_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    path = tmp_path / "console.yaml"
    path.write_text(
        "console:\n  node: 127.0.0.1:7443\n  node_ca: ca.pem\n  node_server_name: nl-customs\n"
    )
    config = load_config(path)
    assert config.node_ca == ca
    assert config.listen == "127.0.0.1:8080"
    assert not config.tls
    assert not config.cookie_secure


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "  node: nowhere\n  node_ca: ca.pem\n  node_server_name: a\n",
            "console.node: expected host:port",
        ),
        (
            "  node: h:1\n  node_ca: nope.pem\n  node_server_name: a\n",
            "console.node_ca: no such file",
        ),
        ("  node: h:1\n  node_ca: ca.pem\n", "console.node_server_name: required setting"),
        (
            "  node: h:1\n  node_ca: ca.pem\n  node_server_name: a\n  tls_cert: ca.pem\n",
            "give both or neither",
        ),
        (
            "  node: h:1\n  node_ca: ca.pem\n  node_server_name: a\n  tokn: x\n",
            "console.tokn: unknown",
        ),
    ],
)
def test_config_errors_name_the_setting(tmp_path: Path, body: str, problem: str) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "console.yaml"
    path.write_text("console:\n" + body)
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_form_fields_map_to_and_from_the_nodes_paths() -> None:
    assert forms.field_for_path("alert.subjects.containers[0].number") == "containers-0-number"
    assert forms.field_for_path("alert.recipients[1].treaty_id") == "recipients-1-treaty_id"
    assert forms.field_for_path("alert.evaluation.source_reliability") == "reliability"
    assert forms.field_for_path("alert.expire_time") == "expire"
    assert forms.field_for_path("alert.categories[2]") == "categories"
    assert forms.field_for_path("alert.something_else") == ""
    draft = forms.Draft.from_form(
        {
            "kind": "narcotics",
            "tlp": "amber_strict",
            "expire": "2030-01-01T10:00",
            "recipients-0-agency_id": " de-customs ",
            "recipients-0-treaty_id": "t",
            "containers-3-number": "mscu1234566",
            "containers-3-hs_codes": "300490; 300420",
            "persons-0-name": "",
            "persons-99-name": "ignored: beyond the rows a form may have",
            "unknown": "dropped",
        }
    )
    alert = draft.to_alert()
    assert alert.kind == 5
    assert alert.tlp == 4
    assert [(r.agency_id, r.treaty_id) for r in alert.recipients] == [("de-customs", "t")]
    assert [c.number for c in alert.subjects.containers] == ["MSCU1234566"]
    assert list(alert.subjects.containers[0].hs_codes) == ["300490", "300420"]
    assert len(alert.subjects.persons) == 0  # an empty row is not a subject
    assert alert.expire_time.seconds == 1893492000
    assert draft.apply("add:vessels")
    assert len(draft.rows["vessels"]) == 1
    assert draft.apply("remove:containers:0")
    assert draft.rows["containers"] == []
    assert not draft.apply("add:nothing")


def test_sse_messages_split_lines_and_carry_ids() -> None:
    assert message("<li>\n</li>", event="upsert", id="7") == (
        b"event: upsert\nid: 7\ndata: <li>\ndata: </li>\n\n"
    )
    assert message("", id="9") == b"id: 9\n\n"


def test_serve_command_runs_the_console(tmp_path: Path) -> None:
    """``intelshare console serve`` as operators run it: a process, a ready file, a page."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not contacted until someone signs in")
    config = tmp_path / "console.yaml"
    config.write_text(
        "console:\n  listen: 127.0.0.1:0\n  node: 127.0.0.1:9\n"
        "  node_ca: ca.pem\n  node_server_name: nl-customs\n"
    )
    ready = tmp_path / "console.port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "intelshare.cli",
            "console",
            "serve",
            "--config",
            str(config),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{ready.read_text()}"
        assert httpx.get(url + "/healthz").text == "ok"
        page = httpx.get(url + "/inbox")
        assert page.status_code == 303
        sign_in = httpx.get(url + "/sign-in")
        assert "node of <strong>nl-customs</strong>" in sign_in.text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert '"message": "console for nl-customs on http://127.0.0.1:' in out
    assert "color_message" not in out


def test_serve_command_says_what_is_wrong_with_the_config(tmp_path: Path) -> None:
    config = tmp_path / "console.yaml"
    config.write_text("console:\n  node: 127.0.0.1:9\n")
    done = subprocess.run(
        [sys.executable, "-m", "intelshare.cli", "console", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "console.node_ca: required setting is missing" in done.stderr
