"""The `kovr` command: every subcommand answers --help without loading torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kovr.cli import build_parser
from kovr.settings import SettingsError, load_settings


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices or ())


def test_top_level_help_does_not_import_torch() -> None:
    code = "import sys; from kovr.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", _subcommands())
def test_each_subcommand_has_help(name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kovr", name, "--help"], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "usage: kovr" in out.stdout


def test_the_research_command_is_there_in_a_checkout_and_skipped_where_its_package_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kovr.cli

    assert "vr-data" in _subcommands()
    monkeypatch.setattr(kovr.cli, "OPTIONAL_COMMAND_MODULES", ("kovr_absent_research.cli",))  # as in the images
    assert "vr-data" not in _subcommands() and "model-server" in _subcommands()


def test_invalid_settings_fail_with_one_line() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(port=70000)
    assert "\n" not in str(info.value)
    assert "KOVR_PORT" in str(info.value)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert load_settings(forwarded_allow_ips=" 172.18.0.1, 10.0.0.0/8 ").forwarded_allow_ips == "172.18.0.1,10.0.0.0/8"
    assert load_settings(forwarded_allow_ips="").forwarded_allow_ips == ""  # trust no proxy
    with pytest.raises(SettingsError, match=r"proxy\.example\.com"):
        load_settings(forwarded_allow_ips="127.0.0.1,proxy.example.com")


def test_production_refuses_default_secret() -> None:
    with pytest.raises(SettingsError, match="KOVR_JWT_SECRET"):
        load_settings(profile="production", mongodb_uri="mongodb://db:27017")
