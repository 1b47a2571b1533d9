"""xapi API errors: a code and string parameters, exactly as `ErrorDescription` carries them."""

from __future__ import annotations


class XapiError(Exception):
    """An API failure: `["CODE", "param", ...]` on the wire (never an XML-RPC fault)."""

    def __init__(self, code: str, *params: object) -> None:
        self.code = code
        self.params = tuple(str(p) for p in params)
        super().__init__(code, *self.params)

    @property
    def description(self) -> list[str]:
        return [self.code, *self.params]
