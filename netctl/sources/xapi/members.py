"""Which pool member to talk to: the master, wherever it is now.

A pool's master moves (`pool.designate_new_master` in every rolling upgrade; with xapi HA a
slave takes over when the master dies, `pool.emergency_transition_to_master`). A slave answers
a client with `HOST_IS_SLAVE [master address]`; a dead master answers nothing. So the sync
keeps every member's address (the URLs it was given, and each host's `host.address` once it
has read them) and:
- on `HOST_IS_SLAVE` goes to the address named, with the scheme and port it was given;
- when the member it talks to is unreachable, tries the next one (one round over the members
  per backoff step, so a dead master costs one step, not a wait for it to come back).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

from netctl.model.hostport import bracketed, join_host_port


class PoolMembers:
    """The members' URLs, in the order to try them, and the one in use."""

    def __init__(self, urls: list[str]) -> None:
        if not urls:
            raise ValueError("at least one pool member's URL is needed")
        self.urls: list[str] = list(dict.fromkeys(urls))
        self.current = self.urls[0]
        self.master_since: float | None = None  # wall clock of the last login on the master
        # members tried since the last login: after an emergency transition the other slaves
        # still name the old, dead master until `pool.recover_slaves`, so a slave naming a
        # member already tried this round does not send the sync back there
        self.tried: set[str] = set()
        self.wrapped = False  # the last `failed()` began a new round over the members

    def url_for(self, address: str) -> str:
        """The URL of the member at `address`: the current URL's scheme, port and path."""
        parts = urlsplit(self.current)
        netloc = join_host_port(address, parts.port) if parts.port else bracketed(address)
        return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))

    def follow(self, master_address: str) -> str | None:
        """A slave named the master: use it from now on (and keep it among the members).
        None when that member was tried and failed this round (a stale slave's answer)."""
        url = self.url_for(master_address)
        if url not in self.urls:
            self.urls.append(url)
        if url in self.tried:
            return None
        self.tried.add(self.current)
        self.current = url
        return url

    def learn(self, addresses: list[str]) -> None:
        """The pool's hosts as xapi lists them: each is a member to try when the one in use is
        gone. The URLs given at start stay (a host may have left xapi's list but not the
        operator's)."""
        for address in addresses:
            if address:
                url = self.url_for(address)
                if url not in self.urls:
                    self.urls.append(url)

    def failed(self) -> str:
        """The member in use did not lead to a master: the next one not tried this round
        (`wrapped` when every member was: a new round begins, after a backoff)."""
        self.tried.add(self.current)
        rest = [u for u in self.urls if u not in self.tried]
        self.wrapped = not rest
        if self.wrapped:
            self.tried.clear()
            rest = self.urls
        self.current = rest[0]
        return self.current

    def logged_in(self) -> None:
        self.master_since = time.time()
        self.tried.clear()
        self.wrapped = False
