"""Wire encoding exactly as xapi (ocaml-rpc) emits it: spec §1.2 (XML-RPC) and §1.8 (JSON-RPC).

Why not `xmlrpc.client.dumps`: xapi sends 64-bit ints as bare decimal strings
(`<value>1500</value>`), strings without `<string>`, and `<i4>` only for the int32
`valid_ref_counts`; the official client depends on those shapes (it gets `'1500'`, a str).
Values reach the codec as plain Python (str, int, bool, float, list, dict, None); `Int32`
marks the one int32, `DateTime` a datetime.
"""

from __future__ import annotations

import json
import xmlrpc.client
from typing import Any


class Int32(int):
    """An int xapi marshals as `<i4>` (only `event.from`'s valid_ref_counts)."""


class DateTime(str):
    """A datetime, already formatted `YYYYMMDDTHH:MM:SSZ`."""


class MalformedRequest(Exception):
    """The body cannot be parsed: answered with HTTP 500 and an HTML body, as xapi does."""


def _text(s: str) -> str:
    """XML character data: `&`, `<`, `>` escaped (saxutils.escape without its per-call dict
    walk: a full dump escapes millions of strings, nearly all without any of them)."""
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    return s


def _xml_value(v: Any, out: list[str]) -> None:
    t = type(v)
    # most frequent first (strings, then structs of them); exact types before subclasses
    if t is str:
        v = _text(v)
        out.append(f"<value>{v.replace(chr(34), '&quot;') if chr(34) in v else v}</value>")
    elif t is dict:
        append = out.append
        append("<value><struct>")
        for k, item in v.items():
            if type(k) is not str or "&" in k or "<" in k or ">" in k:
                k = _text(str(k))
            if type(item) is str:  # inline: one call less per member of every record
                if "&" in item or "<" in item or ">" in item or '"' in item:
                    item = _text(item).replace('"', "&quot;")
                append(f"<member><name>{k}</name><value>{item}</value></member>")
            else:
                append(f"<member><name>{k}</name>")
                _xml_value(item, out)
                append("</member>")
        append("</struct></value>")
    elif isinstance(v, str):
        if isinstance(v, DateTime):
            out.append(f"<value><dateTime.iso8601>{v}</dateTime.iso8601></value>")
        else:
            _xml_value(str(v), out)
    elif isinstance(v, bool):
        out.append("<value><boolean>1</boolean></value>" if v else
                   "<value><boolean>0</boolean></value>")
    elif isinstance(v, int):
        if isinstance(v, Int32):
            out.append(f"<value><i4>{int(v)}</i4></value>")
        else:
            out.append(f"<value>{int(v)}</value>")
    elif isinstance(v, dict):
        _xml_value(dict(v), out)
    elif isinstance(v, list | tuple):
        out.append("<value><array><data>")
        for item in v:
            _xml_value(item, out)
        out.append("</data></array></value>")
    elif isinstance(v, float):
        out.append(f"<value><double>{v:.16g}</double></value>")
    elif v is None:
        out.append("<value><nil/></value>")
    else:
        raise TypeError(f"cannot marshal {type(v).__name__}")


def xml_value(v: Any) -> str:
    """One `<value>` as xapi writes it; also what a task's `result` field holds (xapi stores
    an Async call's result as `Xmlrpc.to_string` of the value)."""
    out: list[str] = []
    _xml_value(v, out)
    return "".join(out)


def xml_response(result: Any) -> bytes:
    """A methodResponse around one value (xapi: the Status/Value or Status/ErrorDescription
    struct)."""
    out = ['<?xml version="1.0"?><methodResponse><params><param>']
    _xml_value(result, out)
    out.append("</param></params></methodResponse>")
    return "".join(out).encode("utf-8")


def xml_success(value: Any) -> bytes:
    return xml_response({"Status": "Success", "Value": value})


def xml_bare(value: Any) -> bytes:
    """A methodResponse holding the value itself, without the Status/Value struct: how xapi
    answers `system.listMethods` (api_server.ml)."""
    return xml_response(value)


def xml_failure(error: list[str]) -> bytes:
    return xml_response({"Status": "Failure", "ErrorDescription": list(error)})


def parse_xml_request(body: bytes) -> tuple[str, list[Any]]:
    """(method, params) of a methodCall; MalformedRequest if the XML is not one."""
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception as exc:  # expat errors, ResponseError, ValueError...
        raise MalformedRequest(f"XML-RPC parse error: {exc}") from None
    if not method:
        raise MalformedRequest("not a methodCall")
    return method, [_from_xmlrpc(p) for p in params]


def _from_xmlrpc(v: Any) -> Any:
    if isinstance(v, xmlrpc.client.DateTime):
        return DateTime(v.value)
    if isinstance(v, list):
        return [_from_xmlrpc(x) for x in v]
    if isinstance(v, dict):
        return {k: _from_xmlrpc(x) for k, x in v.items()}
    if isinstance(v, bytes | bytearray):
        return bytes(v).decode("utf-8", "replace")
    return v


# --- JSON-RPC ---------------------------------------------------------------------------------


class JsonRequest:
    """A parsed JSON-RPC request: version 1 (no "jsonrpc" member) or 2."""

    def __init__(self, method: str, params: list[Any], id_: Any, v2: bool) -> None:
        self.method, self.params, self.id, self.v2 = method, params, id_, v2


def parse_json_request(body: bytes) -> JsonRequest:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"JSON parse error: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("Malformed_method_request: not an object")
    v2 = data.get("jsonrpc") == "2.0"
    method = data.get("method")
    if not isinstance(method, str):
        raise MalformedRequest("Malformed_method_request: no method")
    if data.get("id") is None:
        raise MalformedRequest("Malformed_method_request: no id")
    params = data.get("params")
    if isinstance(params, list):
        pass
    elif v2 and params is None:
        params = []
    elif v2 and isinstance(params, dict):
        params = [params]
    else:
        raise MalformedRequest("Malformed_method_request: params must be an array")
    return JsonRequest(method, params, data["id"], v2)


# compact, and no cycle check: values are plain trees the simulator just built (a full dump of
# a 64-host pool is ~100k records; the check costs ~10% of its encoding)
_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def json_success(req: JsonRequest, value: Any) -> bytes:
    if req.v2:
        doc: dict[str, Any] = {"jsonrpc": "2.0", "result": value, "id": req.id}
    else:
        doc = {"result": value, "error": None, "id": req.id}
    return _JSON.encode(doc).encode("utf-8")


def json_failure(req: JsonRequest, error: list[str]) -> bytes:
    if req.v2:
        doc: dict[str, Any] = {"jsonrpc": "2.0", "error": {"code": 1, "message": error[0],
                                                           "data": list(error[1:])},
                               "id": req.id}
    else:
        doc = {"result": None, "error": list(error), "id": req.id}
    return _JSON.encode(doc).encode("utf-8")
