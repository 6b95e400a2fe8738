"""The sandbox's JSON control API under ``/_sandbox/`` (no auth; loopback use by demo/bench).

=======  ===============================  ==================================================
GET      /_sandbox/units                  ``{"units": [{"id", "code", "name"}, ...]}``
GET      /_sandbox/truth?unit&start&end   ``{"nights": ["YYYY-MM-DD", ...], "kinds": {kind: [...]}}``
                                          (start <= d < end; ``Sandbox.blocked_nights_by_kind``)
GET      /_sandbox/stays?unit=ID          ``{"stays": [{"id", "start", "end", "holdType"}]}``
POST     /_sandbox/reservations           ``{"unit", "start", "end", "holdType"?}`` -> 201 ``{"id"}``
PUT      /_sandbox/reservations/ID        ``{"start", "end"}`` (move)
DELETE   /_sandbox/reservations/ID        cancel
GET      /_sandbox/work_orders?unit=  ``{"workOrders": [{"id", "unit", "status", "removes",
                                          "start", "end"}]}`` (``end``: the last night removed)
POST     /_sandbox/work_orders            ``{"unit", "start", "end", "status"?, "removes"?}`` ->
                                          201 ``{"id"}``
PUT      /_sandbox/work_orders            ``{"granted": bool}``: false -> the work-order
                                          operations answer 403
PUT      /_sandbox/work_orders/ID         ``{"status"?, "removes"?, "start"?, "end"?}``
DELETE   /_sandbox/work_orders/ID         complete it (status Completed)
POST     /_sandbox/contract_blocks        ``{"unit", "start", "end"}`` -> 201 ``{"id"}`` (nights
                                          start .. end - 1 blocked for contract dates)
DELETE   /_sandbox/contract_blocks/ID     end it
POST     /_sandbox/faults                 ``{"fault": NAME, "op"?, "unit"?, "times"?, PARAM...}``
                                          (``Sandbox.inject``, see :mod:`.faults`) or
                                          ``{"unit", "status", "times"?}`` (``fail_unit``) or
                                          ``{"op", "status", "times"?, "retryAfter"?}`` or
                                          ``{"soap": MODE}`` (EscapiaNET ``soap_fault_mode``)
GET      /_sandbox/faults                 ``{"faults": [{"fault", "op", "unit", "times",
                                          "params"}], "soap": MODE or null}``
DELETE   /_sandbox/faults                 clear all faults (and the soap mode)
DELETE   /_sandbox/tokens                 expire every issued token
GET      /_sandbox/requests               ``{"total": N, "byOp": {op: N}, "byStatus": {...}}``
DELETE   /_sandbox/requests               reset the request log
PUT      /_sandbox/channels/NAME          a channel export at /_channels/NAME.ics (see
DELETE   /_sandbox/channels/NAME          sandbox/channels.py); GET /_sandbox/channels: the
GET      /_sandbox/channels               requests each export had
=======  ===============================  ==================================================
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:  # pragma: no cover
    from escapia_ical.sandbox.server import Sandbox


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _date(value: Any, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ControlError(400, f"{what} must be YYYY-MM-DD, got {value!r}") from None


def _body(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(400, f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _unit(sb: Sandbox, unit_id: Any) -> str:
    if unit_id not in sb.unit_ids():
        raise ControlError(404, f"unknown unit {unit_id!r}")
    return unit_id


def handle(sb: Sandbox, method: str, path: str, query: dict, raw: bytes) -> tuple[int, Any]:
    """Answer one control request: ``(status, JSON payload)``."""
    try:
        return _route(sb, method, path.rstrip("/"), query, raw)
    except ControlError as exc:
        return exc.status, {"error": str(exc)}


def _route(sb: Sandbox, method: str, path: str, query: dict, raw: bytes) -> tuple[int, Any]:
    routes = {
        "/_sandbox/units": {"GET": lambda: {"units": [sb.unit(u) for u in sb.unit_ids()]}},
        "/_sandbox/truth": {"GET": lambda: _truth(sb, query)},
        "/_sandbox/stays": {"GET": lambda: {"stays": sb.reservations(_unit(sb, query.get("unit")))}},
        "/_sandbox/reservations": {"POST": lambda: _add(sb, _body(raw))},
        "/_sandbox/contract_blocks": {"POST": lambda: _block_contract(sb, _body(raw))},
        "/_sandbox/faults": {"POST": lambda: _fault(sb, _body(raw)),
                             "GET": lambda: {"faults": sb.faults.active(), "soap": sb.soap_fault_mode},
                             "DELETE": lambda: (sb.clear_faults(), {"ok": True})[1]},
        "/_sandbox/work_orders": {"GET": lambda: {"workOrders": sb.work_orders(query.get("unit") or None)},
                                  "POST": lambda: _add_work_order(sb, _body(raw)),
                                  "PUT": lambda: _grant(sb, _body(raw))},
        "/_sandbox/channels": {"GET": lambda: sb.channels.summary()},
        "/_sandbox/tokens": {"DELETE": lambda: (sb.expire_tokens(), {"ok": True})[1]},
        "/_sandbox/requests": {"GET": lambda: _counts(sb),
                               "DELETE": lambda: (sb.reset_request_log(), {"ok": True})[1]},
    }
    if path.startswith("/_sandbox/reservations/"):
        rid = unquote(path[len("/_sandbox/reservations/"):])
        routes[path] = {"DELETE": lambda: _cancel(sb, rid), "PUT": lambda: _move(sb, rid, _body(raw))}
    if path.startswith("/_sandbox/contract_blocks/"):
        block = unquote(path[len("/_sandbox/contract_blocks/"):])
        routes[path] = {"DELETE": lambda: _unblock_contract(sb, block)}
    if path.startswith("/_sandbox/channels/"):
        name = unquote(path[len("/_sandbox/channels/"):])
        routes[path] = {"PUT": lambda: _put_channel(sb, name, _body(raw)),
                        "DELETE": lambda: sb.channels.delete(name)}
    if path.startswith("/_sandbox/work_orders/"):
        order = unquote(path[len("/_sandbox/work_orders/"):])
        routes[path] = {"DELETE": lambda: _change_work_order(sb, order, {"status": "Completed"}),
                        "PUT": lambda: _change_work_order(sb, order, _body(raw))}
    if path not in routes:
        raise ControlError(404, f"no control endpoint {path}")
    action = routes[path].get(method)
    if action is None:
        raise ControlError(405, f"{method} not allowed on {path}")
    result = action()
    created = method == "POST" and path in ("/_sandbox/reservations", "/_sandbox/work_orders",
                                            "/_sandbox/contract_blocks")
    return (201, result) if created else (200, result)


def _put_channel(sb: Sandbox, name: str, body: dict) -> dict:
    try:
        return sb.channels.put(name, body)
    except (KeyError, TypeError, ValueError) as exc:
        raise ControlError(400, f"bad channel export: {exc}") from None


def _truth(sb: Sandbox, query: dict) -> dict:
    unit = _unit(sb, query.get("unit"))
    start, end = _date(query.get("start"), "start"), _date(query.get("end"), "end")
    return {"unit": unit, "start": start.isoformat(), "end": end.isoformat(),
            "nights": [d.isoformat() for d in sorted(sb.blocked_nights(unit, start, end))],
            "kinds": {kind: [d.isoformat() for d in sorted(nights)]
                      for kind, nights in sb.blocked_nights_by_kind(unit, start, end).items()}}


def _block_contract(sb: Sandbox, body: dict) -> dict:
    unit = _unit(sb, body.get("unit"))
    start, end = _date(body.get("start"), "start"), _date(body.get("end"), "end")
    try:
        return {"id": sb.block_contract(unit, start, end)}
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None


def _unblock_contract(sb: Sandbox, block_id: str) -> dict:
    try:
        sb.unblock_contract(block_id)
    except KeyError:
        raise ControlError(404, f"no contract block {block_id!r}") from None
    return {"ok": True}


def _add(sb: Sandbox, body: dict) -> dict:
    unit = _unit(sb, body.get("unit"))
    start, end = _date(body.get("start"), "start"), _date(body.get("end"), "end")
    try:
        return {"id": sb.add_reservation(unit, start, end, body.get("holdType"))}
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None


def _cancel(sb: Sandbox, rid: str) -> dict:
    try:
        sb.cancel_reservation(rid)
    except KeyError:
        raise ControlError(404, f"no active reservation {rid!r}") from None
    return {"ok": True}


def _move(sb: Sandbox, rid: str, body: dict) -> dict:
    start, end = _date(body.get("start"), "start"), _date(body.get("end"), "end")
    try:
        sb.move_reservation(rid, start, end)
    except KeyError:
        raise ControlError(404, f"no active reservation {rid!r}") from None
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    return {"ok": True}


def _work_order_changes(body: dict) -> dict:
    changes: dict = {}
    for key in ("start", "end"):
        if key in body:
            changes[key] = None if body[key] is None else _date(body[key], key)
    if "status" in body:
        changes["status"] = body["status"]
    if "removes" in body:
        if not isinstance(body["removes"], bool):
            raise ControlError(400, "removes must be true or false")
        changes["removes"] = body["removes"]
    return changes


def _add_work_order(sb: Sandbox, body: dict) -> dict:
    unit, changes = _unit(sb, body.get("unit")), _work_order_changes(body)
    try:
        start, end = changes.pop("start", None), changes.pop("end", None)
        return {"id": sb.add_work_order(unit, start, end, **changes)}
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None


def _change_work_order(sb: Sandbox, order_id: str, body: dict) -> dict:
    try:
        sb.change_work_order(order_id, **_work_order_changes(body))
    except KeyError:
        raise ControlError(404, f"no work order {order_id!r}") from None
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    return {"ok": True}


def _grant(sb: Sandbox, body: dict) -> dict:
    if not isinstance(body.get("granted"), bool):
        raise ControlError(400, "body must be {\"granted\": true|false}")
    sb.work_orders_granted = body["granted"]
    return {"ok": True}


def _inject(sb: Sandbox, body: dict) -> dict:
    params = {k: v for k, v in body.items() if k not in ("fault", "op", "unit", "times")}
    try:
        sb.inject(body["fault"], op=body.get("op"), unit=body.get("unit"), times=body.get("times"), **params)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, str(exc)) from None
    return {"ok": True}


def _fault(sb: Sandbox, body: dict) -> dict:
    if "fault" in body:
        return _inject(sb, body)
    if "soap" in body:
        try:
            sb.soap_fault_mode = body["soap"]
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        return {"ok": True}
    status, times = body.get("status"), body.get("times")
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ControlError(400, f"status must be an HTTP status code, got {status!r}")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ControlError(400, f"times must be a positive integer or null, got {times!r}")
    try:
        if "unit" in body:
            sb.fail_unit(_unit(sb, body["unit"]), status, times)
        elif "op" in body:
            sb.fail_operation(body["op"], status, times if "times" in body else 1, body.get("retryAfter"))
        else:
            raise ControlError(400, "a fault needs 'fault', 'unit', 'op' or 'soap'")
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    return {"ok": True}


def _counts(sb: Sandbox) -> dict:
    log = list(sb.requests)
    return {"total": len(log), "byOp": dict(Counter(str(r["op"]) for r in log)),
            "byStatus": dict(Counter(str(r["status"]) for r in log))}
