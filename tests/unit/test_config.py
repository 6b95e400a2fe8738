"""load_config: YAML + ${VAR} + schema -> frozen Config, or one ConfigError listing everything."""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

import pytest

from escapia_ical.config import (
    ESCAPIANET_DEFAULT_BASE_URL,
    HSAPI_DEFAULT_BASE_URL,
    Config,
    EscapianetAccount,
    FeedSettings,
    HsapiAccount,
    HttpPolicy,
    load_config,
)
from escapia_ical.errors import ConfigError

ENV = {"HAWAII_CLIENT_ID": "hawaii-id", "HAWAII_CLIENT_SECRET": "hawaii-secret"}

DOCUMENTED_EXAMPLE = """\
output_dir: ../output        # relative paths resolve against this file's folder
state_dir: ../state
http:
  connect_timeout: 5
  read_timeout: 30
  retry_attempts: 4
  retry_initial_wait: 1
  retry_max_wait: 60
feeds:
  summary: Not available
  past_days: 7
  future_days: 730
  uid_domain: escapia-ical
accounts:
  - name: hawaii-homes
    api: hsapi
    base_url: https://hsapi.escapia.com/dragomanadapter
    pmcid: "1020"
    client_id: ${HAWAII_CLIENT_ID}
    client_secret: ${HAWAII_CLIENT_SECRET}
    units: all
    end_date: exclusive
    http: {read_timeout: 60}
"""

# Line 1: output_dir, 2: state_dir, 3: accounts, 4: the account item (name), 5..8: its keys.
MINIMAL = """\
output_dir: out
state_dir: state
accounts:
  - name: main
    api: hsapi
    pmcid: "1"
    client_id: the-id
    client_secret: ${SECRET}
"""


def write(folder: Path, text: str, mode: int = 0o600, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


def minimal(tmp_path: Path, extra: str = "", account_extra: str = "", **kw) -> Path:
    text = MINIMAL.replace("accounts:\n", extra + "accounts:\n") + account_extra
    return write(tmp_path, text, **kw)


def problems(path: Path, environ: dict[str, str] | None = None, **kw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"SECRET": "s"} if environ is None else environ, **kw)
    return caught.value.problems


# --- the happy path ---------------------------------------------------------------------


def test_documented_example_loads_into_exact_dataclasses(tmp_path, monkeypatch):
    path = write(tmp_path / "etc", DOCUMENTED_EXAMPLE, mode=0o644)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)

    config = load_config(path, ENV)

    assert config == Config(
        path=path,
        output_dir=(tmp_path / "output").resolve(),
        state_dir=(tmp_path / "state").resolve(),
        feeds=FeedSettings("Not available", 7, 730, "escapia-ical", uid_domain_fallback=False),
        accounts=(
            HsapiAccount(
                name="hawaii-homes",
                pmcid="1020",
                client_id="hawaii-id",
                client_secret="hawaii-secret",
                base_url="https://hsapi.escapia.com/dragomanadapter",
                units="all",
                end_date="exclusive",
                http=HttpPolicy(5.0, 60.0, 4, 1.0, 60.0),
                api="hsapi",
                line=15,
            ),
        ),
        warnings=(),  # secrets come from ${VAR}: mode 0644 is fine
    )
    assert config.account("hawaii-homes") is config.accounts[0]


def test_defaults_fill_every_optional_key(tmp_path):
    config = load_config(minimal(tmp_path), {"SECRET": "s"})
    assert config.feeds == FeedSettings()
    [account] = config.accounts
    assert account.http == HttpPolicy()
    assert account.base_url == HSAPI_DEFAULT_BASE_URL
    assert account.units == "all"
    assert account.end_date == "exclusive"
    assert account.line == 4
    assert config.output_dir == tmp_path.resolve() / "out"


def test_http_layers_merge_account_over_top_over_defaults(tmp_path):
    path = minimal(tmp_path, extra="http: {read_timeout: 10, retry_attempts: 2}\n",
                   account_extra="    http: {retry_attempts: 9, retry_initial_wait: 0}\n")
    [account] = load_config(path, {"SECRET": "s"}).accounts
    assert account.http == HttpPolicy(connect_timeout=5.0, read_timeout=10.0, retry_attempts=9,
                                      retry_initial_wait=0.0, retry_max_wait=60.0)
    assert isinstance(account.http.read_timeout, float)


def test_total_timeout_defaults_to_60_and_is_bounded(tmp_path):
    assert HttpPolicy().total_timeout == 60.0
    path = minimal(tmp_path, extra="http: {total_timeout: 5}\n",
                   account_extra="    http: {total_timeout: 0.5}\n")
    [account] = load_config(path, {"SECRET": "s"}).accounts
    assert account.http.total_timeout == 0.5 and isinstance(account.http.total_timeout, float)
    path = minimal(tmp_path, extra="http: {total_timeout: 3601}\n", account_extra="    http: {total_timeout: 0}\n")
    assert problems(path) == [
        f"{path}:3: http.total_timeout: must be at most 3600 (got 3601)",
        f"{path}:10: accounts[0].http.total_timeout: must be greater than 0 (got 0)",
    ]


def test_integer_pmcid_and_unit_ids_become_strings(tmp_path):
    path = write(tmp_path, MINIMAL.replace('pmcid: "1"', "pmcid: 1020") + "    units: [12, '0034']\n")
    [account] = load_config(path, {"SECRET": "s"}).accounts
    assert account.pmcid == "1020"
    assert account.units == ("12", "0034")


def test_home_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, MINIMAL.replace("output_dir: out", "output_dir: ~/feeds")
                 .replace("state_dir: state", f"state_dir: {tmp_path / 'var'}"))
    config = load_config(path, {"SECRET": "s"})
    assert config.output_dir == (tmp_path / "home" / "feeds").resolve()
    assert config.state_dir == (tmp_path / "var").resolve()


def test_merge_keys_share_settings_between_accounts(tmp_path):
    text = MINIMAL.replace("  - name: main", "  - &base\n    name: main") + (
        "  - <<: *base\n    name: second\n    pmcid: 2\n"
    )
    config = load_config(write(tmp_path, text), {"SECRET": "s"})
    assert [(a.name, a.pmcid, a.client_id) for a in config.accounts] == [
        ("main", "1", "the-id"), ("second", "2", "the-id")]
    assert config.accounts[1].line == 10  # "&base" pushed the first account down a line


# --- ${VAR} -----------------------------------------------------------------------------


def test_env_expansion_embedded_and_several_per_string(tmp_path):
    path = minimal(tmp_path, account_extra="    base_url: https://${HOST}:${PORT}/api/\n")
    env = {"SECRET": "a", "HOST": "example.org", "PORT": "8443"}
    [account] = load_config(path, env).accounts
    assert account.base_url == "https://example.org:8443/api"
    assert account.client_secret == "a"


def test_env_value_is_validated_after_expansion(tmp_path):
    path = minimal(tmp_path, account_extra="    base_url: ${URL}\n")
    assert problems(path, {"SECRET": "s", "URL": "http://example.org"}) == [
        f"{path}:9: accounts[0].base_url: plain http is only allowed for loopback; use https"]


def test_unset_variable_names_variable_key_and_line(tmp_path):
    path = minimal(tmp_path)
    assert problems(path, {}) == [
        f"{path}:8: accounts[0].client_secret: environment variable SECRET is not set"]


def test_empty_variable_counts_as_set_but_empty(tmp_path):
    path = minimal(tmp_path)
    assert problems(path, {"SECRET": ""}) == [
        f"{path}:8: accounts[0].client_secret: must not be empty"]


def test_environ_defaults_to_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET", "from-os")
    assert load_config(minimal(tmp_path)).accounts[0].client_secret == "from-os"


def test_without_secrets_secret_keys_are_not_read_but_the_rest_is(tmp_path):
    """``status`` loads the config this way: a monitoring user holds no Escapia credential."""
    path = minimal(tmp_path, extra="healthcheck_url: ${HC}\n", account_extra="    base_url: ${URL}\n")
    config = load_config(path, {"URL": "https://hsapi.example.org"}, secrets=False)
    assert config.accounts[0].client_secret == "${SECRET}"  # as written: never used
    assert config.accounts[0].base_url == "https://hsapi.example.org"
    assert load_config(path, {}, secrets=False).accounts[0].base_url == "${URL}"  # not needed by status
    state = path.read_text().replace("state_dir: state", "state_dir: ${STATE}")
    path.write_text(state)
    assert problems(path, {}, secrets=False) == [
        f"{path}:2: state_dir: environment variable STATE is not set"]


# --- schema problems --------------------------------------------------------------------


def test_unknown_keys_reported_at_their_own_lines(tmp_path):
    path = minimal(tmp_path, extra="colour: red\nfeeds:\n  summary: Busy\n  pastdays: 3\n",
                   account_extra="    pmcidd: 7\n")
    assert problems(path) == [
        f"{path}:3: colour: unknown key",
        f"{path}:6: feeds.pastdays: unknown key",
        f"{path}:13: accounts[0].pmcidd: unknown key",
    ]


def test_wrong_types_and_ranges(tmp_path):
    path = minimal(tmp_path, extra=(
        "feeds:\n  past_days: seven\n  future_days: 2000\n  summary: ' '\n  uid_domain: a b\n"
        "http:\n  retry_attempts: 2.5\n  connect_timeout: 0\n  retry_max_wait: -1\n"),
        account_extra="    end_date: sometimes\n")
    assert problems(path) == [
        f"{path}:4: feeds.past_days: must be an integer (got a string)",
        f"{path}:5: feeds.future_days: must be at most 1100 (got 2000)",
        f"{path}:6: feeds.summary: must not be empty",
        f"{path}:7: feeds.uid_domain: must be hostname-like (letters, digits, dots, hyphens)",
        f"{path}:9: http.retry_attempts: must be an integer (got a number)",
        f"{path}:10: http.connect_timeout: must be greater than 0 (got 0)",
        f"{path}:11: http.retry_max_wait: must be at least 0 (got -1)",
        f"{path}:18: accounts[0].end_date: must be one of: exclusive, inclusive (got 'sometimes')",
    ]


def test_missing_keys_reported_at_parent_line(tmp_path):
    path = write(tmp_path, "output_dir: out\naccounts:\n  - name: main\n    api: hsapi\n")
    assert problems(path) == [
        f"{path}:1: (top): missing required key 'state_dir'",
        f"{path}:3: accounts[0]: missing required key 'pmcid'",
        f"{path}:3: accounts[0]: missing required key 'client_id'",
        f"{path}:3: accounts[0]: missing required key 'client_secret'",
    ]


def test_unknown_api_and_empty_accounts(tmp_path):
    path = write(tmp_path, MINIMAL.replace("api: hsapi", "api: soap"))
    assert problems(path) == [
        f"{path}:5: accounts[0].api: must be one of: hsapi, escapianet (got 'soap')"]
    path = write(tmp_path, "output_dir: out\nstate_dir: st\naccounts: []\n")
    assert problems(path) == [f"{path}:3: accounts: must not be an empty list"]


@pytest.mark.parametrize("name", ["Main", "-main", "ma_in", "a" * 64])
def test_bad_account_name(tmp_path, name):
    path = write(tmp_path, MINIMAL.replace("name: main", f"name: {name}"))
    expected = ("must be at most 63 characters long" if len(name) == 64 else
                "must match [a-z0-9][a-z0-9-]* (lowercase letters, digits, hyphens)")
    assert problems(path) == [f"{path}:4: accounts[0].name: {expected}"]


def test_duplicate_account_names(tmp_path):
    path = write(tmp_path, MINIMAL + MINIMAL.split("accounts:\n")[1])
    assert problems(path) == [
        f"{path}:9: accounts[1].name: duplicate account name 'main' (first at line 4)"]


def test_duplicate_yaml_keys(tmp_path):
    path = minimal(tmp_path, extra="feeds:\n  past_days: 1\n  past_days: 2\n")
    assert problems(path) == [f"{path}:5: feeds.past_days: duplicate key (first at line 4)"]


@pytest.mark.parametrize("units, expected", [
    ("[]", "accounts[0].units: must not be an empty list"),
    ("some", 'accounts[0].units: must be "all" or a list of unit ids'),
    ("{a: 1}", 'accounts[0].units: must be "all" or a list of unit ids'),
    ("[1, '1']", "accounts[0].units[1]: duplicate unit id '1' (first at line 9)"),
    ("[1, [2]]", "accounts[0].units[1]: must be a string or an integer (got a list)"),
])
def test_bad_units(tmp_path, units, expected):
    path = minimal(tmp_path, account_extra=f"    units: {units}\n")
    assert problems(path) == [f"{path}:9: {expected}"]


def test_every_problem_reported_together_in_line_order(tmp_path):
    text = """\
        accounts:
          - name: Bad
            api: hsapi
            pmcid: true
            client_id: ${NOPE}
            client_secret: x
            colour: blue
        feeds: {past_days: -1}
        output_dir: 5
    """
    path = write(tmp_path, text)
    assert problems(path, {}) == [
        f"{path}:1: (top): missing required key 'state_dir'",
        f"{path}:2: accounts[0].name: must match [a-z0-9][a-z0-9-]* "
        "(lowercase letters, digits, hyphens)",
        f"{path}:4: accounts[0].pmcid: must be a string or an integer (got true or false)",
        f"{path}:5: accounts[0].client_id: environment variable NOPE is not set",
        f"{path}:7: accounts[0].colour: unknown key",
        f"{path}:8: feeds.past_days: must be at least 0 (got -1)",
        f"{path}:9: output_dir: must be a string (got an integer)",
    ]


# --- directories and URLs ---------------------------------------------------------------


@pytest.mark.parametrize("output_dir, state_dir, expected", [
    ("out", "out/state", "state_dir: must not be inside output_dir ({out}): "
                         "its tokens would be published"),
    ("out", "./out/", "state_dir: must not be the same folder as output_dir ({out}): "
                      "its tokens would be published"),
    ("state/out", "state", "output_dir: must not be inside state_dir ({state})"),
])
def test_state_and_output_dirs_must_not_overlap(tmp_path, output_dir, state_dir, expected):
    path = write(tmp_path, MINIMAL.replace("output_dir: out", f"output_dir: {output_dir}")
                 .replace("state_dir: state", f"state_dir: {state_dir}"))
    line = 1 if expected.startswith("output_dir") else 2
    root = tmp_path.resolve()
    assert problems(path) == [
        f"{path}:{line}: " + expected.format(out=root / "out", state=root / "state")]


def test_plain_http_rejected_for_remote_hosts(tmp_path):
    path = minimal(tmp_path, account_extra="    base_url: http://hsapi.escapia.com/x\n")
    assert problems(path) == [
        f"{path}:9: accounts[0].base_url: plain http is only allowed for loopback; use https"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://localhost/api",
                                 "http://[::1]:9/", "http://127.1.2.3"])
def test_plain_http_accepted_for_loopback(tmp_path, url):
    path = minimal(tmp_path, account_extra=f"    base_url: {url}\n")
    assert load_config(path, {"SECRET": "s"}).accounts[0].base_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["ftp://example.org", "https://", "example.org/api",
                                 "https://host:port/"])
def test_base_url_must_be_http_url_with_host(tmp_path, url):
    path = minimal(tmp_path, account_extra=f"    base_url: {url}\n")
    assert problems(path) == [f"{path}:9: accounts[0].base_url: must be an http(s) URL "
                              f"with a host, e.g. {HSAPI_DEFAULT_BASE_URL}"]


# --- unreadable or malformed files ------------------------------------------------------


def test_yaml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "output_dir: out\nstate_dir: state\n  accounts: x\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:3: (yaml): mapping values are not allowed here")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}: cannot read config: No such file or directory"]


def test_empty_file_and_non_mapping_root(tmp_path):
    path = write(tmp_path, "# nothing here\n")
    assert problems(path) == [f"{path}:1: (top): the file is empty; expected a mapping "
                              "with output_dir, state_dir and accounts"]
    path = write(tmp_path, "- a\n- b\n")
    assert problems(path) == [f"{path}:1: (top): must be a mapping of keys to values, not a list"]


def alias_bomb(levels: int = 9, repeat: int = 9, merge: bool = False) -> str:
    """Return a tiny YAML document whose aliases expand to ``repeat ** levels`` nodes."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * repeat) + "]"] if not merge else [
        "a0: &a0 {" + ", ".join(f"k{i}: {i}" for i in range(repeat)) + "}"]
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * repeat)
        lines.append(f"a{level}: &a{level} " + ("{<<: [" + aliases + "]}" if merge else f"[{aliases}]"))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("merge", [False, True], ids=["lists", "merge-keys"])
def test_alias_bomb_is_refused_at_once(tmp_path, merge):
    path = write(tmp_path, alias_bomb(levels=6, merge=merge))  # 9**6: fails fast unfixed
    assert len(path.read_bytes()) < 700
    started = time.monotonic()
    [problem] = problems(path)
    assert time.monotonic() - started < 0.5
    assert re.fullmatch(rf"{re.escape(str(path))}:[1-9]: \(yaml\): aliases expand to more than "
                        r"100000 nodes; refusing \(an alias bomb\?\)", problem)


def test_a_few_aliases_and_merge_keys_still_load(tmp_path):
    copies = "".join(f"  - <<: *main\n    name: copy-{i}\n    units: *units\n" for i in range(40))
    path = write(tmp_path, textwrap.dedent("""\
        output_dir: out
        state_dir: state
        accounts:
          - &main
            name: main
            api: hsapi
            pmcid: "1"
            client_id: the-id
            client_secret: ${SECRET}
            http: {read_timeout: 60, retry_attempts: 2}
            units: &units ["101", "102", "103"]
        """) + copies)
    config = load_config(path, {"SECRET": "s"})
    assert len(config.accounts) == 41
    assert all(a.units == ("101", "102", "103") and a.client_id == "the-id"
               and a.http.read_timeout == 60 for a in config.accounts)


def test_filename_is_reported_as_given(tmp_path, monkeypatch):
    write(tmp_path, MINIMAL.replace("pmcid", "pmcidd"))
    monkeypatch.chdir(tmp_path)
    assert problems("config.yaml")[0] == "config.yaml:4: accounts[0]: missing required key 'pmcid'"


# --- secrets ----------------------------------------------------------------------------


LITERAL_SECRET = MINIMAL.replace("${SECRET}", "literal-s3cret")


def test_permission_warning_for_readable_literal_secret(tmp_path):
    path = write(tmp_path, LITERAL_SECRET, mode=0o644)
    assert load_config(path, {}).warnings == (
        f"{path}: holds secrets but is readable by group/others (mode 0644); "
        "chmod 600 it or use ${VAR}",)


def test_no_permission_warning_for_private_file(tmp_path):
    assert load_config(write(tmp_path, LITERAL_SECRET, mode=0o600), {}).warnings == ()


@pytest.mark.parametrize("secret, expected", [("${SECRET}", 0), ("${SECRET}${SECRET}", 0),
                                              ("pre-${SECRET}", 1)])
def test_permission_warning_only_for_literal_parts(tmp_path, secret, expected):
    path = write(tmp_path, MINIMAL.replace("${SECRET}", secret), mode=0o640)
    assert len(load_config(path, {"SECRET": "s"}).warnings) == expected


def test_secret_values_never_appear_in_messages(tmp_path):
    text = MINIMAL.replace("client_secret: ${SECRET}", "client_secret: 987654321") \
        .replace("client_id: the-id", "client_id: [918273645]") \
        + "    end_date: ${MODE}\n    pmcid: 1\n"
    path = write(tmp_path, text)
    env = {"MODE": "xyzzy-private"}
    with pytest.raises(ConfigError) as caught:
        load_config(path, env)
    message = str(caught.value)
    for secret in ("987654321", "918273645", "xyzzy-private"):
        assert secret not in message
    assert caught.value.problems == [
        f"{path}:7: accounts[0].client_id: must be a string (got a list)",
        f"{path}:8: accounts[0].client_secret: must be a string (got an integer)",
        f"{path}:9: accounts[0].end_date: must be one of: exclusive, inclusive",
        f"{path}:10: accounts[0].pmcid: duplicate key (first at line 6)",
    ]


def test_secret_not_in_repr(tmp_path):
    config = load_config(minimal(tmp_path), {"SECRET": "hidden-value"})
    assert "hidden-value" not in repr(config)


# --- api: escapianet --------------------------------------------------------------------

# Line 4: the account item (name), 5..7: its keys; account_extra starts at line 8.
ESCAPIANET_MINIMAL = """\
output_dir: out
state_dir: state
accounts:
  - name: maui-soap
    api: escapianet
    username: soap-user
    password: ${SECRET}
"""


def escapianet(tmp_path: Path, account_extra: str = "", **kw) -> Path:
    return write(tmp_path, ESCAPIANET_MINIMAL + account_extra, **kw)


def test_escapianet_account_loads_with_defaults(tmp_path):
    config = load_config(escapianet(tmp_path), {"SECRET": "pw"})
    assert config.accounts == (
        EscapianetAccount(
            name="maui-soap",
            username="soap-user",
            password="pw",
            base_url=ESCAPIANET_DEFAULT_BASE_URL,
            property_manager_code=None,
            units="all",
            calendar_mode="batch",
            blocked_codes="UO",
            http=HttpPolicy(),
            api="escapianet",
            line=4,
        ),
    )
    assert ESCAPIANET_DEFAULT_BASE_URL == "https://api.escapia.com"


def test_mixed_hsapi_and_escapianet_file(tmp_path):
    text = DOCUMENTED_EXAMPLE + """\
  - name: maui-soap
    api: escapianet
    base_url: http://127.0.0.1:8080/soap/
    username: ${MAUI_USER}
    password: ${MAUI_PASSWORD}
    property_manager_code: 1911
    units: [A1, 12]
    calendar_mode: per_unit
    blocked_codes: UOH
    mode: full
    reconcile_hours: 12
    http: {retry_attempts: 2}
"""
    env = {**ENV, "MAUI_USER": "maui", "MAUI_PASSWORD": "maui-pw"}
    config = load_config(write(tmp_path, text), env)
    assert [type(a) for a in config.accounts] == [HsapiAccount, EscapianetAccount]
    assert config.accounts[0].line == 15
    assert config.accounts[1] == EscapianetAccount(
        name="maui-soap",
        username="maui",
        password="maui-pw",
        base_url="http://127.0.0.1:8080/soap",
        property_manager_code="1911",
        units=("A1", "12"),
        calendar_mode="per_unit",
        blocked_codes="UOH",
        mode="full",
        reconcile_hours=12.0,
        http=HttpPolicy(5.0, 30.0, 2, 1.0, 60.0),
        api="escapianet",
        line=24,
    )
    assert config.account("maui-soap") is config.accounts[1]


def test_hsapi_keys_rejected_in_escapianet_account(tmp_path):
    path = escapianet(tmp_path, "    pmcid: 1\n    client_id: x\n    client_secret: y\n"
                                "    end_date: inclusive\n")
    assert problems(path) == [
        f"{path}:8: accounts[0].pmcid: unknown key",
        f"{path}:9: accounts[0].client_id: unknown key",
        f"{path}:10: accounts[0].client_secret: unknown key",
        f"{path}:11: accounts[0].end_date: unknown key",
    ]


def test_escapianet_keys_rejected_in_hsapi_account(tmp_path):
    path = minimal(tmp_path, account_extra=(
        "    username: u\n    password: p\n    property_manager_code: '1'\n"
        "    calendar_mode: batch\n    blocked_codes: UO\n"))
    assert problems(path) == [
        f"{path}:9: accounts[0].username: unknown key",
        f"{path}:10: accounts[0].password: unknown key",
        f"{path}:11: accounts[0].property_manager_code: unknown key",
        f"{path}:12: accounts[0].calendar_mode: unknown key",
        f"{path}:13: accounts[0].blocked_codes: unknown key",
    ]


def test_escapianet_missing_username_and_password(tmp_path):
    path = write(tmp_path, "\n".join(ESCAPIANET_MINIMAL.splitlines()[:5]) + "\n")
    assert problems(path) == [
        f"{path}:4: accounts[0]: missing required key 'username'",
        f"{path}:4: accounts[0]: missing required key 'password'",
    ]
    path = write(tmp_path, ESCAPIANET_MINIMAL.replace("soap-user", "''"))
    assert problems(path) == [f"{path}:6: accounts[0].username: must not be empty"]


def test_missing_or_unknown_api_is_the_only_problem_of_its_account(tmp_path):
    text = ESCAPIANET_MINIMAL.replace("    api: escapianet\n", "") + (
        "    client_id: x\n    blocked_codes: a\n    base_url: ftp://x\n"
        "  - name: second\n    api: [escapianet]\n    colour: red\n"
        "  - just-a-string\n")
    path = write(tmp_path, text)
    assert problems(path) == [
        f"{path}:4: accounts[0]: missing required key 'api' (one of: hsapi, escapianet)",
        f"{path}:11: accounts[1].api: must be one of: hsapi, escapianet (got ['escapianet'])",
        f"{path}:13: accounts[2]: must be a mapping (got a string)",
    ]


def test_escapianet_bad_calendar_mode(tmp_path):
    path = escapianet(tmp_path, "    calendar_mode: parallel\n")
    assert problems(path) == [
        f"{path}:8: accounts[0].calendar_mode: must be one of: batch, per_unit (got 'parallel')"]


@pytest.mark.parametrize("codes, expected", [
    ("uo", "must be uppercase letters A-Z, e.g. UO"),
    ("U O", "must be uppercase letters A-Z, e.g. UO"),
    ("UA", "must not contain A (available)"),
    ("A", "must not contain A (available)"),
    ("''", "must not be empty"),
    ("UOU", "must not repeat a letter"),
    ("7", "must be a string (got an integer)"),
])
def test_escapianet_blocked_codes_rules(tmp_path, codes, expected):
    path = escapianet(tmp_path, f"    blocked_codes: {codes}\n")
    assert problems(path) == [f"{path}:8: accounts[0].blocked_codes: {expected}"]


@pytest.mark.parametrize("codes", ["U", "UOB", "ZYX"])
def test_escapianet_blocked_codes_stored_as_given(tmp_path, codes):
    path = escapianet(tmp_path, f"    blocked_codes: {codes}\n")
    assert load_config(path, {"SECRET": "s"}).accounts[0].blocked_codes == codes


@pytest.mark.parametrize("extra, expected", [
    ("    property_manager_code: true\n",
     "accounts[0].property_manager_code: must be a string or an integer (got true or false)"),
    ("    property_manager_code: ''\n", "accounts[0].property_manager_code: must not be empty"),
    ("    base_url: https://\n", "accounts[0].base_url: must be an http(s) URL with a host, "
                                  "e.g. https://api.escapia.com"),
    ("    base_url: http://api.escapia.com\n",
     "accounts[0].base_url: plain http is only allowed for loopback; use https"),
    ("    units: [X1, X1]\n", "accounts[0].units[1]: duplicate unit id 'X1' (first at line 8)"),
    ("    units: []\n", "accounts[0].units: must not be an empty list"),
    ("    units: some\n", 'accounts[0].units: must be "all" or a list of unit ids'),
    ("    http: {read_timeout: 0}\n", "accounts[0].http.read_timeout: must be greater than 0 (got 0)"),
])
def test_escapianet_other_keys_follow_hsapi_rules(tmp_path, extra, expected):
    path = escapianet(tmp_path, extra)
    assert problems(path) == [f"{path}:8: {expected}"]


def test_escapianet_password_never_appears_in_messages(tmp_path):
    text = ESCAPIANET_MINIMAL.replace("username: soap-user", "username: [user-918273]") \
        .replace("password: ${SECRET}", "password: 987654321") + """\
  - name: second
    api: escapianet
    username: u
    password: {pass-hunter2: 1}
    password: [pass-hunter3]
  - name: third
    api: hsapi
    pmcid: 1
    client_id: i
    client_secret: s
    password: pass-other-77
"""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    for secret in ("user-918273", "987654321", "hunter2", "hunter3", "pass-other-77"):
        assert secret not in str(caught.value)
    assert caught.value.problems == [
        f"{path}:6: accounts[0].username: must be a string (got a list)",
        f"{path}:7: accounts[0].password: must be a string (got an integer)",
        f"{path}:12: accounts[1].password: duplicate key (first at line 11)",
        f"{path}:12: accounts[1].password: must be a string (got a list)",
        f"{path}:18: accounts[2].password: unknown key",
    ]
    path = write(tmp_path, ESCAPIANET_MINIMAL.replace("${SECRET}", "${SECRET}[x]"))
    [account] = load_config(path, {"SECRET": "pw-777"}).accounts
    assert account.password == "pw-777[x]"
    assert "pw-777" not in repr(account)


def test_duplicate_account_names_across_apis(tmp_path):
    text = MINIMAL + ESCAPIANET_MINIMAL.split("accounts:\n")[1].replace("maui-soap", "main")
    path = write(tmp_path, text)
    assert problems(path) == [
        f"{path}:9: accounts[1].name: duplicate account name 'main' (first at line 4)"]


def test_permission_warning_for_literal_escapianet_password(tmp_path):
    path = write(tmp_path, ESCAPIANET_MINIMAL.replace("${SECRET}", "literal-pw"), mode=0o640)
    assert load_config(path, {}).warnings == (
        f"{path}: holds secrets but is readable by group/others (mode 0640); "
        "chmod 600 it or use ${VAR}",)
    path = escapianet(tmp_path / "env", mode=0o644)  # password from ${SECRET}
    assert load_config(path, {"SECRET": "s"}).warnings == ()


def test_secrets_from_systemd_credentials(tmp_path):
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "HAWAII_CLIENT_SECRET").write_text("from-a-credential\n")
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: o\nstate_dir: s\naccounts:\n  - name: a\n    api: hsapi\n    pmcid: 1\n"
                    "    client_id: ${HAWAII_CLIENT_ID}\n    client_secret: ${HAWAII_CLIENT_SECRET}\n")
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "HAWAII_CLIENT_ID": "from-the-environment"}
    account = load_config(path, env).accounts[0]
    assert (account.client_id, account.client_secret) == ("from-the-environment", "from-a-credential")
    with pytest.raises(ConfigError, match="environment variable HAWAII_CLIENT_SECRET is not set"):
        load_config(path, {"HAWAII_CLIENT_ID": "x"})


# --- the publish policy's keys ----------------------------------------------------------


def test_policy_keys_load_and_shrink_guard_is_accepted_with_a_warning(tmp_path):
    path = minimal(tmp_path, "feeds:\n  shrink_guard: 0.5\n  confirm_minutes: 7.5\n  breaker_units: 5\n"
                             "  breaker_share: 0.3\n")
    config = load_config(path, {"SECRET": "s"})
    assert (config.feeds.confirm_minutes, config.feeds.breaker_units, config.feeds.breaker_share) == (7.5, 5, 0.3)
    assert config.warnings == (f"{path}:4: feeds.shrink_guard: no longer used: losses are now judged night by "
                               'night (see "The publish policy" in the README); remove it',)
    assert (FeedSettings().confirm_minutes, FeedSettings().breaker_units, FeedSettings().breaker_share) == (10, 3, 0.2)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("confirm_minutes", "-1", "must be at least 0"),
    ("breaker_units", "0", "must be at least 1"),
    ("breaker_units", "2.5", "must be an integer"),
    ("breaker_share", "1.5", "must be at most 1"),
])
def test_policy_keys_are_checked(tmp_path, key, value, message):
    found = problems(minimal(tmp_path, f"feeds:\n  {key}: {value}\n"))
    assert len(found) == 1 and f"feeds.{key}: {message}" in found[0]


def test_values_a_run_would_trip_on_are_problems_at_load(tmp_path):
    path = minimal(tmp_path, extra="healthcheck_url: http://hc.example.org/ping/uuid\n"
                   "http:\n  read_timeout: 1e400\n")
    path.write_text(path.read_text().replace("client_id: the-id", "client_id: $CLIENT"))
    found = problems(path)
    assert any("accounts[0].client_id: $CLIENT would be taken literally; write ${CLIENT}" in p for p in found)
    assert any("http.read_timeout:" in p for p in found)
    assert any("healthcheck_url: plain http is only allowed for loopback; use https" in p for p in found)
    assert not any("hc.example.org" in p for p in found)  # the healthcheck URL is a secret


def test_deep_check_finds_what_the_machine_would_refuse(tmp_path):
    from escapia_ical.config.deep import deep_problems

    (tmp_path / "metrics").mkdir()
    (tmp_path / "a-file").write_text("")
    path = minimal(tmp_path, extra=f"metrics_file: {tmp_path / 'metrics'}\n")
    path.write_text(path.read_text().replace("state_dir: state", f"state_dir: {tmp_path / 'a-file' / 'state'}"))
    assert deep_problems(load_config(path, {"SECRET": "s"})) == [
        f"state_dir: {tmp_path / 'a-file' / 'state'} cannot be created: {tmp_path / 'a-file'} is a file, "
        "not a folder",
        f"metrics_file: {tmp_path / 'metrics'} is a folder; name a file in it, e.g. "
        f"{tmp_path / 'metrics' / 'escapia-ical.prom'}"]
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    path.write_text(path.read_text().replace(str(tmp_path / "a-file" / "state"), str(locked / "state"))
                    .replace(f"metrics_file: {tmp_path / 'metrics'}\n", ""))
    found = deep_problems(load_config(path, {"SECRET": "s"}))
    if os.geteuid() != 0:  # root writes everywhere
        assert found == [f"state_dir: {locked / 'state'} does not exist and cannot be created ({locked} is not "
                         "writable by this user)"]
    else:
        assert found == []
