"""Reading a running `netctl run`'s JSON documents (/status, /stats) for the commands that
show them, with the errors a person can act on: what the controller said when it answered
with an error, or that nothing answers there."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click


class FetchError(click.ClickException):
    """Printed without a traceback."""


def fetch_json(url: str, path: str, query: dict[str, str] | None = None,
               timeout: float = 10.0) -> Any:
    """GET url + path (+ the query) as JSON."""
    target = url.rstrip("/") + path
    if query:
        target += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # the controller answered: say what it said
        try:
            error = json.load(exc).get("error") or exc.reason
        except ValueError:
            error = exc.reason
        raise FetchError(f"{url}: {error}") from None
    except OSError as exc:
        raise FetchError(f"no netctl run answers at {url}: {exc}") from None
