"""Settings: defaults < TOML file < environment < flags; bad values name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from modvault.config import DEFAULT_UPSTREAM, ConfigError, Settings, load_settings
from modvault.sources.upstream_list import parse_upstream_list


def test_defaults_work_on_one_machine() -> None:
    s = load_settings(environ={})
    assert s.listen == "127.0.0.1:3000"
    assert s.upstream == DEFAULT_UPSTREAM == "https://proxy.golang.org,direct"
    assert s.offline is False
    assert s.data_dir.endswith("data")


def test_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "modvault.toml"
    cfg.write_text('listen = "127.0.0.1:4000"\nupstream = "https://a.example"\n'
                   'mutable_ttl = 30\noffline = true\n')
    s = load_settings(config_file=str(cfg), environ={})
    assert (s.listen, s.upstream, s.mutable_ttl, s.offline) == (
        "127.0.0.1:4000", "https://a.example", 30.0, True)
    s = load_settings(config_file=str(cfg), environ={"MODVAULT_LISTEN": "127.0.0.1:5000",
                                                     "MODVAULT_OFFLINE": "false"})
    assert (s.listen, s.offline) == ("127.0.0.1:5000", False)
    s = load_settings(config_file=str(cfg), environ={"MODVAULT_LISTEN": "127.0.0.1:5000"},
                      flags={"listen": "127.0.0.1:6000", "upstream": None})
    assert (s.listen, s.upstream) == ("127.0.0.1:6000", "https://a.example")
    s = load_settings(environ={"MODVAULT_CONFIG": str(cfg)})
    assert s.listen == "127.0.0.1:4000"


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"MODVAULT_LISTEN": "nonsense"}, "listen"),
        ({"MODVAULT_LISTEN": "127.0.0.1:99999"}, "listen"),
        ({"MODVAULT_UPSTREAM": "ftp://x"}, "upstream"),
        ({"MODVAULT_UPSTREAM": "https://a,,https://b"}, "upstream"),
        ({"MODVAULT_UPSTREAM": ""}, "upstream"),
        ({"MODVAULT_OFFLINE": "maybe"}, "offline"),
        ({"MODVAULT_MUTABLE_TTL": "soon"}, "mutable_ttl"),
        ({"MODVAULT_MUTABLE_TTL": "-1"}, "mutable_ttl"),
        ({"MODVAULT_WORKERS": "0"}, "workers"),
        ({"MODVAULT_TLS_CERT": "/nonexistent.pem"}, "tls_cert"),
        ({"MODVAULT_LOG_LEVEL": "loud"}, "log_level"),
        ({"MODVAULT_REDIRECT_ZIPS": "true"}, "redirect_zips"),  # needs store = "s3"
        ({"MODVAULT_STORE": "s3", "MODVAULT_S3_BUCKET": "b", "MODVAULT_REDIRECT_ZIPS_EXPIRY": "1"},
         "redirect_zips_expiry"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ=environ)
    assert str(exc.value).split(":")[0].startswith(setting.split("_")[0])


def test_bad_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("nonsense = [")
    with pytest.raises(ConfigError, match="config"):
        load_settings(config_file=str(cfg), environ={})
    cfg.write_text('no_such_setting = 1\n')
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings(config_file=str(cfg), environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config_file=str(tmp_path / "missing.toml"), environ={})


def test_upstream_list_syntax() -> None:
    entries = parse_upstream_list("https://goproxy.cn|https://proxy.golang.org,direct")
    assert [(e.url, e.fallback_on_any_error) for e in entries] == [
        ("https://goproxy.cn", True), ("https://proxy.golang.org", False), ("direct", False)]
    assert [e.url for e in parse_upstream_list("off")] == ["off"]
    assert [e.url for e in parse_upstream_list("file:///srv/proxy,direct")] == [
        "file:///srv/proxy", "direct"]
    for bad in ("https://a|", ",direct", "gopher://x", "https://"):
        with pytest.raises(ValueError):
            parse_upstream_list(bad)


NOT_NEGATIVE = ["upstream_max_redirects", "memory_cache_bytes", "max_zip_bytes", "max_mod_bytes",
                "max_info_bytes", "max_list_bytes", "memory_item_max_bytes", "hot_zip_bytes", "mutable_ttl",
                "mutable_max_stale", "negative_ttl", "upstream_connect_timeout", "upstream_read_timeout",
                "upstream_total_timeout", "upstream_probe_interval", "upstream_probe_idle",
                "breaker_backoff", "unreachable_memory", "refusal_ttl", "breaker_spike_min"]
AT_LEAST_ONE = ["upstream_max_connections", "breaker_failures", "breaker_spike_samples"]


@pytest.mark.parametrize(("name", "bad", "rule"), [
    *((n, "-1", "must not be negative") for n in NOT_NEGATIVE),
    *((n, "0", "must be at least 1") for n in AT_LEAST_ONE),
])
def test_range_checks_name_the_setting_and_value(name: str, bad: str, rule: str) -> None:
    kind = type(getattr(Settings(), name))
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={f"MODVAULT_{name.upper()}": bad})
    assert str(exc.value) == f"{name}: {rule}, got {kind(bad)}"
    load_settings(environ={f"MODVAULT_{name.upper()}": "0" if bad == "-1" else "1"})  # the bound is fine


def test_port_zero_is_refused_with_several_workers() -> None:
    """Each worker binds the listen address itself: port 0 would give each its own port."""
    with pytest.raises(ConfigError, match="port 0 lets the system pick"):
        load_settings(environ={"MODVAULT_LISTEN": "127.0.0.1:0", "MODVAULT_WORKERS": "2"})
    assert load_settings(environ={"MODVAULT_LISTEN": "127.0.0.1:0"}).port == 0
