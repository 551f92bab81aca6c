"""The TAXII server's configuration file: every problem at once, in the setting's name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from intelshare.cli import _load_plugins, cli
from intelshare.errors import ConfigError
from taxii.config import load_config

_load_plugins()


def _write(tmp_path: Path, values: dict[str, object]) -> Path:
    path = tmp_path / "taxii.yaml"
    path.write_text(yaml.safe_dump({"taxii": values}))
    return path


def test_a_good_file_loads_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    config = load_config(
        _write(
            tmp_path,
            {
                "listen": "127.0.0.1:9443",
                "node": "127.0.0.1:7443",
                "ca": "ca.pem",
                "agency_id": "nl-customs",
            },
        )
    )
    assert (config.host, config.port) == ("127.0.0.1", 9443)
    assert config.ca_pem.startswith(b"-----BEGIN")
    assert config.treaties == ()
    assert (config.default_limit, config.max_limit) == (100, 1000)


def test_every_problem_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.treaty").write_bytes(b"not a treaty")
    path = _write(
        tmp_path,
        {
            "listen": "0.0.0.0:9443",
            "ca": "missing.pem",
            "treaties": ["bad.treaty", "gone.treaty"],
            "max_limit": 0,
            "colour": "blue",
        },
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.metadata
    assert "tokens must not cross a network in clear" in problems["taxii.listen"]
    assert problems["taxii.node"] == "required"
    assert problems["taxii.agency_id"] == "required"
    assert "cannot read" in problems["taxii.ca"]
    assert "is not a treaty file" in problems["taxii.treaties[0]"]
    assert "cannot read" in problems["taxii.treaties[1]"]
    assert problems["taxii.max_limit"] == "a whole number, at least 1"
    assert problems["taxii.colour"] == "unknown setting"


def test_serve_reports_a_bad_file_in_its_own_words(tmp_path: Path) -> None:
    path = _write(tmp_path, {"listen": "nowhere"})
    result = CliRunner().invoke(cli, ["taxii", "serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "invalid TAXII config" in result.output
    assert "taxii.agency_id: required" in result.output
