"""A requests Session that reads the environment once per origin, not on every request.

requests (with ``trust_env``) looks up proxies on every request by walking ``os.environ``
twice, and stats ``~/.netrc``: about 0.4 ms of CPU a request, a third of what requests itself
costs, or 4 s of a cold sync of 10,000 units. :class:`Session` finds the same proxies,
``no_proxy`` exceptions and CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) as requests
would, once per scheme, host and port, for the life of the session (one run).
``tests/unit/test_session.py`` compares it with requests' own lookup.

``~/.netrc`` is never read: credentials come from the config only. (requests would send a
netrc entry for Escapia's host as Basic auth on any request without its own auth.)

:meth:`Session.send_request` is what :class:`~escapia_ical.sources.http.HttpClient` sends
with: requests' own preparation of the request (URL, query, body, auth), then its adapter
or, where nothing needs the adapter, http.client (``direct``: see sources/transport.py),
without Session.request's merging of settings, cookie jar and hooks, none of which we use
(0.2 ms a request; a cold sync sends one per unit). So no cookie is kept or sent, and a
redirect is never followed (the adapter answers it as it is). The request is prepared with
PreparedRequest's own steps, less two that cost without effect here: the cookie step (an empty
jar, a mock request and a cookie-policy walk to add no Cookie header) and re-preparing a URL
already seen: a URL sent without params is prepared once and remembered (a cold sync sends
the same URL with 10,000 bodies; prepare_url's parsing and IDNA/quoting checks were 0.1 ms a
request). And a JSON request whose method, URL and headers were seen before (every
GetUnitNonAvailability of a run, until the token changes) takes its headers from the first:
requests' own steps would only check and merge the same headers again (0.05 ms a request); its
body is encoded as prepare_body encodes it, and only Content-Length's value changes. The
tests compare the bytes on the wire, and the prepared requests, with requests'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.exceptions import InvalidJSONError
from requests.models import complexjson  # what requests encodes a json= body with (json or simplejson)
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies


class Session(requests.Session):
    """requests.Session with the environment's proxies and CA bundle read once per origin."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # requests' per-request lookups (and netrc) off; ours below
        self._environment: dict[str, tuple[dict[str, str], str | None]] = {}
        self._settings: dict[str, dict[str, Any]] = {}  # origin -> the adapter's proxies, verify, cert
        self._urls: dict[str, str] = {}  # url (sent without params) -> prepared URL
        # (method, url, session headers, request headers) of a json= request -> its prepared
        # URL and headers
        self._json_heads: dict[tuple, tuple[str, CaseInsensitiveDict]] = {}
        # Sends what it can straight over http.client (sources/transport.py); None: the adapter.
        self.direct: Any = None

    def send_request(self, method: str, url: str, *, timeout: Any, headers: Mapping[str, str] | None = None,
                     **kwargs: Any) -> requests.Response:
        """Send one request (``kwargs``: requests.Request's ``params``, ``data``, ``json``,
        ``auth``) with this session's headers under ``headers``, the environment's proxies and
        CA bundle, and no cookies; return the streamed answer, redirects not followed."""
        prepared = self._prepare_json(method, url, headers, **kwargs)
        if prepared is None:
            prepared = self._prepare(method, url, self._merged(headers), **kwargs)
        origin = _origin(url)
        settings = self._settings.get(origin)
        if settings is None:
            settings = self.merge_environment_settings(url, {}, True, None, None)
            del settings["stream"]
            self._settings[origin] = settings
        if self.direct is not None and self.direct.usable(self, prepared, origin, settings):
            return self.direct.send(prepared, timeout=timeout, verify=settings["verify"])
        return self.get_adapter(prepared.url).send(prepared, stream=True, timeout=timeout, **settings)

    def close(self) -> None:
        if self.direct is not None:
            self.direct.close()
        super().close()

    def _merged(self, headers: Mapping[str, str] | None) -> CaseInsensitiveDict:
        """This session's headers under ``headers``, those set to None left out (as requests)."""
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]
        return merged

    def _prepare(self, method: str, url: str, headers: CaseInsensitiveDict, *, params: Any = None,
                 data: Any = None, json: Any = None, auth: Any = None) -> requests.PreparedRequest:
        """Return what ``requests.Request(...).prepare()`` would, without a cookie jar."""
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        known = self._urls.get(url) if params is None else None
        if known is None:
            prepared.prepare_url(url, params)
            if params is None and len(self._urls) < MAX_URLS:
                self._urls[url] = prepared.url
        else:
            prepared.url = known
        prepared.prepare_headers(headers)  # still checked every time: no CR/LF in a value
        prepared.prepare_body(data, None, json)
        prepared.prepare_auth(auth, url)
        return prepared

    def _prepare_json(self, method: str, url: str, headers: Mapping[str, str] | None, *,
                      params: Any = None, data: Any = None, json: Any = None,
                      auth: Any = None) -> requests.PreparedRequest | None:
        """For a request with a json= body only, return what :meth:`_prepare` would, its
        headers copied from the first request with the same method, URL and headers
        (session's and request's; None: not one of those, or not seen yet)."""
        if json is None or params is not None or data is not None or auth is not None:
            return None
        try:
            key = (method, url, tuple(self.headers.items()), tuple(headers.items()) if headers else ())
            known = self._json_heads.get(key)
        except TypeError:  # a value that is no str or bytes: requests' own steps refuse it
            return None
        if known is None:
            prepared = self._prepare(method, url, self._merged(headers), json=json)
            if "Content-Length" in prepared.headers:  # (a json= body always has a length)
                if len(self._json_heads) >= MAX_URLS:
                    self._json_heads.clear()
                self._json_heads[key] = (prepared.url, prepared.headers.copy())
            return prepared
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.url = known[0]
        try:  # as PreparedRequest.prepare_body
            body = complexjson.dumps(json, allow_nan=False)
        except ValueError as exc:
            raise InvalidJSONError(exc, request=prepared) from exc
        prepared.body = body if isinstance(body, bytes) else body.encode("utf-8")
        prepared.headers = known[1].copy()
        prepared.headers["Content-Length"] = str(len(prepared.body))  # (its place in the order kept)
        return prepared

    def merge_environment_settings(self, url, proxies, stream, verify, cert) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        origin = _origin(url)
        found = self._environment.get(origin)
        if found is None:
            no_proxy = proxies.get("no_proxy") if proxies else None
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = self._environment[origin] = (get_environ_proxies(url, no_proxy=no_proxy), bundle)
        environ_proxies, bundle = found
        proxies = {} if proxies is None else proxies
        for key, value in environ_proxies.items():
            proxies.setdefault(key, value)
        if bundle and (verify is True or verify is None):
            verify = bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


# Prepared URLs remembered per session (those sent without params: the operations' URLs,
# a few dozen at most; a URL with a query, one per reservation, is prepared each time).
MAX_URLS = 1024


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
