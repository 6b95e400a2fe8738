"""The configuration: ``load`` reads the YAML file (line-tracking, ``positions``), expands
``${VAR}``, validates it against ``schema`` and the cross-checks of ``accounts``, and
returns typed, frozen objects. Everything downstream receives these, never raw YAML."""

from escapia_ical.config.accounts import (
    ESCAPIANET_DEFAULT_BASE_URL,
    HSAPI_DEFAULT_BASE_URL,
    Account,
    EscapianetAccount,
    HsapiAccount,
    HttpPolicy,
)
from escapia_ical.config.feeds import FeedSettings
from escapia_ical.config.load import ChannelSettings, Config, OutputSettings, StateSettings, load_config

__all__ = [
    "ESCAPIANET_DEFAULT_BASE_URL",
    "HSAPI_DEFAULT_BASE_URL",
    "Account",
    "ChannelSettings",
    "Config",
    "EscapianetAccount",
    "FeedSettings",
    "HsapiAccount",
    "HttpPolicy",
    "OutputSettings",
    "StateSettings",
    "load_config",
]
