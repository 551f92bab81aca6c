from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from intelshare import config
from intelshare.config import setting
from intelshare.errors import ConfigError


@dataclass(frozen=True)
class Sample:
    listen: str = setting(doc="address")
    workers: int = setting(4, doc="threads")
    debug: bool = setting(False, doc="debug")
    key: Path | None = setting(None, doc="a key file")

    def validate(self) -> None:
        config.parse_address("sample.listen", self.listen)


def test_file_values_env_overrides_and_relative_paths(tmp_path: Path) -> None:
    data = {"sample": {"listen": "127.0.0.1:0", "workers": "8", "key": "keys/k.pem"}}
    got = config.load(Sample, "sample", data, env={"INTELSHARE_SAMPLE_DEBUG": "yes"}, base=tmp_path)
    assert got == Sample(listen="127.0.0.1:0", workers=8, debug=True, key=tmp_path / "keys/k.pem")


def test_paths_of_a_file_named_relative_to_here_are_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--config node.yaml``: base ``.``; the paths must not depend on the current folder."""
    monkeypatch.chdir(tmp_path)
    data = {"sample": {"listen": "127.0.0.1:0", "key": "keys/k.pem"}}
    got = config.load(Sample, "sample", data, env={}, base=Path("node.yaml").parent)
    assert got.key == tmp_path / "keys/k.pem"
    assert got.key is not None
    assert got.key.is_absolute()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sample": {}}, "sample.listen: required setting is missing"),
        ({"sample": {"listen": "x:1", "wrokers": 3}}, "sample.wrokers: unknown setting"),
        ({"sample": {"listen": "x:1", "workers": "many"}}, "sample.workers: expected an integer"),
        ({"sample": {"listen": "nope"}}, "sample.listen: expected host:port"),
        ({"sample": {"listen": "x:1", "debug": "maybe"}}, "sample.debug: expected true or false"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(Sample, "sample", data, env={})


def test_schema_lists_env_names_and_docs() -> None:
    schema = config.schema(Sample, "sample")
    assert schema["workers"] == {
        "env": "INTELSHARE_SAMPLE_WORKERS",
        "doc": "threads",
        "default": "4",
    }


def test_read_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.read_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.read_file(bad)
