"""The :class:`Sandbox`: a local fake Escapia HSAPI server plus its ground truth and controls.

Operations are served at ``{base_url}/hsapi/{Op}`` (a ``/dragomanadapter`` prefix, as in the
real base URL, is accepted too); the JSON control API lives under ``{base_url}/_sandbox/``.
Order of checks for an HSAPI request: route (404) -> method (405) -> ``latency`` sleep ->
bearer token (401; an ``expire_tokens`` fault may expire it here) -> required headers
(400/403) -> JSON body (400) -> ``fail_unit`` fault (GetUnitNonAvailability) -> the
operation; then the injected faults (:mod:`.faults`) change the answer. EscapiaNET (SOAP) is
served over the same data at ``{base_url}/EVRNService.svc`` and ``/EVRNContentService.svc``
(see :mod:`.escapianet`); the HTTP handler is in :mod:`.handler`.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from escapia_ical.sandbox import hsapi
from escapia_ical.sandbox.channels import ChannelExports
from escapia_ical.sandbox.data import SandboxData, utc_now
from escapia_ical.sandbox.escapianet import CALENDAR_MAX_DAYS, SOAP_FAULT_MODES, SOAP_OPERATIONS
from escapia_ical.sandbox.faults import FaultSet, make_fault
from escapia_ical.sandbox.handler import Handler
from escapia_ical.sandbox.hsapi import OP_ALIASES, OPERATIONS, TOKEN_OP, ApiError
from escapia_ical.sandbox.hsapi_work_orders import WorkOrderControls
from escapia_ical.sandbox.seed import seed as seed_data

SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"
SANDBOX_PMCID = "1020"


class Sandbox(WorkOrderControls):
    """Fake HSAPI and EscapiaNET on ``host:port`` (0 = any free port, bound at construction)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, today: dt.date | None = None,
                 seed: int = 1020, extra_units: int = 0, token_ttl: float = 3600.0,
                 max_page_size: int = 10_000, end_date: str = "exclusive",
                 guest_data_in_nonavailability: bool = False, latency: float = 0.0,
                 future_versions: str = "error", calendar_max_days: int = CALENDAR_MAX_DAYS,
                 unit_list_cap: int | None = None, cached_batch: bool = False) -> None:
        if end_date not in ("exclusive", "inclusive"):
            raise ValueError(f"end_date must be 'exclusive' or 'inclusive', got {end_date!r}")
        if future_versions not in ("error", "empty"):
            raise ValueError(f"future_versions must be 'error' or 'empty', got {future_versions!r}")
        self.future_versions = future_versions  # GetReservationChanges beyond the end (see .hsapi)
        # EscapiaNET (see .escapianet): nights one calendar covers at most; units one UnitSearch
        # lists at most (then Units/@moredata); cached_batch (settable): every batch answer
        # repeats the previous one, with UnitCalendarAvails/@CachedData="true".
        self.calendar_max_days, self.unit_list_cap = calendar_max_days, unit_list_cap
        self.cached_batch = cached_batch
        self._last_batch: bytes | None = None
        self.soap_requests: list[dict] = []  # {"op", "path", "request": the raw body}
        self.today = today or dt.date.today()
        self.token_ttl, self.max_page_size, self.end_date = token_ttl, max_page_size, end_date
        self.guest_data_in_nonavailability, self.latency = guest_data_in_nonavailability, latency
        self.in_flight = self.max_in_flight = 0  # API requests being served now / the most at once
        self.data = SandboxData(self.today, seed)
        seed_data(self.data, extra_units)
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}  # encodedId -> expiry (time.time())
        self._unit_faults: dict[str, list] = {}  # unit -> [status, remaining or None]
        self.faults = FaultSet(self)  # see :meth:`inject`
        self._soap_fault_mode: str | None = None
        self.started_at = utc_now()  # EscapiaNET LastUpdated of a unit without changes
        self.requests: list[dict] = []
        self.channels = ChannelExports()  # channel calendar exports (sandbox/channels.py): not Escapia
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.sandbox = self  # type: ignore[attr-defined]
        self.host, self.port = host, self._httpd.server_address[1]
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.base_url = f"http://{url_host}:{self.port}"
        self._thread: threading.Thread | None = None
        self._serving = False  # serve_forever running (thread or foreground)
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                            name="escapia-sandbox", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._serving:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the foreground until Ctrl-C (or :meth:`stop` from another thread)."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._serving = False
            if not self._closed:
                self._closed = True
                self._httpd.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- ground truth --------------------------------------------------------------------
    def unit_ids(self) -> list[str]:
        """nativePMSID of every distributed unit, in unit-code order."""
        with self._lock:
            return [u.id for u in self.data.search_units()]

    def unit(self, unit_id: str) -> dict:
        with self._lock:
            u = self.data.units[unit_id]
            return {"id": u.id, "code": u.code, "name": u.name}

    def blocked_nights(self, unit_id: str, start: dt.date, end: dt.date) -> set[dt.date]:
        """Nights ``start <= d < end`` covered by any active reservation, hold, blocking work
        order or contract block."""
        with self._lock:
            if unit_id not in self.data.units:
                raise KeyError(unit_id)
            return self.data.blocked_nights(unit_id, start, end)

    def blocked_nights_by_kind(self, unit_id: str, start: dt.date, end: dt.date) -> dict[str, set[dt.date]]:
        """:meth:`blocked_nights` by the kind escapia-ical should label them with:
        ``reservation``/``owner``/``maintenance``/``hold`` by holdType, work orders
        ``maintenance``, contract blocks ``other``. A night may carry several kinds."""
        with self._lock:
            if unit_id not in self.data.units:
                raise KeyError(unit_id)
            return self.data.blocked_nights_by_kind(unit_id, start, end)

    def stays(self, unit_id: str) -> list[tuple[dt.date, dt.date]]:
        """``[arrival, departure)`` of every active reservation and hold, sorted."""
        with self._lock:
            return sorted((r.start, r.end) for r in self.data.active(unit_id))

    def reservations(self, unit_id: str) -> list[dict]:
        """Active reservations/holds: ``{"id", "start", "end", "holdType"}`` (ISO dates)."""
        with self._lock:
            return [{"id": r.id, "start": r.start.isoformat(), "end": r.end.isoformat(),
                     "holdType": r.hold_type} for r in self.data.active(unit_id)]

    def batch_range(self) -> tuple[dt.date, dt.date]:
        """``(start, end exclusive)`` of the nights a UnitCalendarAvailBatch answer covers when
        the request names none: today onwards, as far as one calendar goes."""
        return self.today, self.today + dt.timedelta(days=self.calendar_max_days)

    @property
    def version(self) -> int:
        """The change log's latest version (what GetReservationChanges reaches at the end)."""
        with self._lock:
            return self.data.version

    # -- control -------------------------------------------------------------------------
    def add_reservation(self, unit_id: str, start: dt.date, end: dt.date,
                        hold_type: str | None = None) -> str:
        with self._lock:
            return self.data.add_reservation(unit_id, start, end, hold_type)

    def cancel_reservation(self, reservation_id: str) -> None:
        with self._lock:
            self.data.cancel_reservation(reservation_id)

    def move_reservation(self, reservation_id: str, start: dt.date, end: dt.date) -> None:
        with self._lock:
            self.data.move_reservation(reservation_id, start, end)

    def block_contract(self, unit_id: str, start: dt.date, end: dt.date) -> str:
        """Block the unit's nights ``start .. end - 1`` for its effective contract dates (a
        cause of non-availability that is neither a reservation nor a work order: shown by
        GetUnitNonAvailability and EscapiaNET calendars only); return the block's id."""
        with self._lock:
            return self.data.add_contract_block(unit_id, start, end)

    def unblock_contract(self, block_id: str) -> None:
        """End a contract block (KeyError if unknown)."""
        with self._lock:
            self.data.remove_contract_block(block_id)

    def restart_change_log(self) -> None:
        """Escapia resetting its versions: the change feed starts again at version 0 (the next
        change is version 1) while the reservations stay, so a stored cursor is now ahead."""
        with self._lock:
            self.data.restart_change_log()

    def fail_unit(self, unit_id: str, status: int = 500, times: int | None = None) -> None:
        with self._lock:
            self._unit_faults[unit_id] = [status, times]

    def inject(self, fault: str, *, op: str | None = None, unit: str | None = None,
               times: int | None = None, **params: Any) -> None:
        """Make the sandbox misbehave until :meth:`clear_faults` (or ``times`` uses): see
        :mod:`.faults` for the faults and their ``params``. Raise ValueError if unknown."""
        made = make_fault(fault, self._operation(op), unit, times, params)
        if made.name == "same_answer" and made.params["source"] not in self.data.units:
            raise ValueError(f"same_answer: source {made.params['source']!r} is not a unit of the sandbox")
        self.faults.add(made)

    def fail_operation(self, op: str, status: int, times: int | None = 1,
                       retry_after: int | None = None) -> None:
        """Answer ``op`` with ``status`` (``times`` times): a ``status`` or ``rate_limit``
        fault replacing any earlier one on ``op``."""
        op = self._operation(op)
        self.faults.remove(("status", "rate_limit"), op)
        if status == 429:
            self.inject("rate_limit", op=op, times=times, retry_after=retry_after)
        else:
            self.inject("status", op=op, times=times, status=status, retry_after=retry_after)

    @staticmethod
    def _operation(op: str | None) -> str | None:
        op = OP_ALIASES.get(op, op) if op is not None else None
        if op is not None and op not in OPERATIONS and op != TOKEN_OP and op not in SOAP_OPERATIONS:
            known = sorted([*OPERATIONS, TOKEN_OP, *SOAP_OPERATIONS])
            raise ValueError(f"unknown operation {op!r}; one of {known}")
        return op

    def clear_faults(self) -> None:
        """Remove every fault: injected ones, ``fail_unit``/``fail_operation`` and the soap mode."""
        with self._lock:
            self._unit_faults.clear()
            self.faults.clear()
            self._soap_fault_mode = None

    @property
    def soap_fault_mode(self) -> str | None:
        """EscapiaNET misbehaviour for every request until cleared: None or one of
        ``SOAP_FAULT_MODES`` (see :mod:`.escapianet`)."""
        return self._soap_fault_mode

    @soap_fault_mode.setter
    def soap_fault_mode(self, mode: str | None) -> None:
        if mode is not None and mode not in SOAP_FAULT_MODES:
            raise ValueError(f"unknown soap fault mode {mode!r}; one of {SOAP_FAULT_MODES} or None")
        self._soap_fault_mode = mode

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def request_count(self, op: str | None = None) -> int:
        op = OP_ALIASES.get(op, op) if op else None
        with self._lock:
            return sum(1 for r in self.requests if op is None or r["op"] == op)

    def reset_request_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.soap_requests.clear()
            self.max_in_flight = self.in_flight

    def entered(self) -> None:
        """An API request arrived: count it in flight (``max_in_flight``: the most at once)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def left(self) -> None:
        with self._lock:
            self.in_flight -= 1

    # -- serving (called from handler threads) -------------------------------------------
    def _take_fault(self, faults: dict, key: Any) -> list | None:
        with self._lock:
            fault = faults.get(key)
            if fault is None:
                return None
            if fault[1] is not None:
                fault[1] -= 1
                if fault[1] <= 0:
                    del faults[key]
            return fault

    def _issue_token(self, headers: Mapping[str, str]) -> dict:
        credentials = hsapi.basic_credentials(headers.get("Authorization"))
        if credentials != (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET):
            raise ApiError(401, "invalid client credentials", {"WWW-Authenticate": 'Basic realm="hsapi"'})
        token_id = str(uuid.uuid4())
        encoded = base64.b64encode(token_id.encode()).decode()
        expires = time.time() + self.token_ttl
        with self._lock:
            self._tokens[encoded] = expires
        stamp = dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"expiration": stamp, "id": token_id, "encodedId": encoded,
                "authorizationHeaderValue": f"Bearer {encoded}"}

    def _check_bearer(self, headers: Mapping[str, str], op: str) -> None:
        value = headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        token = token.strip()
        with self._lock:
            expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
            if expiry is not None and self.faults.token_expired(token, op):
                del self._tokens[token]
                expiry = None
        if expiry is None or expiry <= time.time():
            raise ApiError(401, "missing, unknown or expired bearer token",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def _serve_hsapi(self, method: str, path: str, query: dict, raw: bytes,
                     headers: Mapping[str, str], ctx: dict) -> tuple[int, Any, dict]:
        op = path[len("/hsapi/"):] if path.startswith("/hsapi/") else None
        if op == TOKEN_OP:
            expected, func, takes_body, needs_pmcid = "GET", None, False, False
        elif op in OPERATIONS:
            expected, func, takes_body, needs_pmcid = OPERATIONS[op]
        else:
            raise ApiError(404, f"no such operation: {path}")
        ctx["op"] = op
        if method != expected:
            raise ApiError(405, f"{op} accepts {expected} only", {"Allow": expected})
        if self.latency:
            time.sleep(self.latency)
        if func is None:
            return 200, self._issue_token(headers), {}
        self._check_bearer(headers, op)
        hsapi.check_headers(headers, needs_pmcid)
        body = hsapi.parse_body(raw) if takes_body else None
        if op == "GetUnitNonAvailability":
            ctx["unit"] = body.get("nativePMSUnitID")
            fault = self._take_fault(self._unit_faults, ctx["unit"]) if isinstance(ctx["unit"], str) else None
            if fault is not None:
                raise ApiError(fault[0], f"injected fault for unit {ctx['unit']!r}")
            start, last = hsapi.parse_range(body.get("dateRange"), "dateRange")
            ctx["range"] = (start, last + dt.timedelta(days=1))  # the nights asked, for same_answer
        with self._lock:
            return 200, func(self, body, query), {}

