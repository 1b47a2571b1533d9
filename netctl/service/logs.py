"""Where `netctl run` logs: stderr always, with levels; optionally a file too.

Under systemd stderr goes to the journal, which stamps each line itself and files it by
priority: there a line is written as `<N>logger LEVEL message` — the `<N>` prefix (syslog
priority, sd-daemon(3)) is how journald learns the level, so `journalctl -p warning` works — and
carries no timestamp of its own. Elsewhere (a terminal, a file a test or the lab collects
stderr into) every line starts with its timestamp. The optional file always has timestamps and
is a `WatchedFileHandler`, so logrotate may move it away without a signal.

`configure()` may be called again (SIGHUP, `netctl.service.reload`): it replaces netctl's own
handlers and level, and keeps anything else attached to the root logger.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

LEVELS = ("debug", "info", "warning", "error")
STAMPED = "%(asctime)s %(name)s %(levelname)s %(message)s"
JOURNAL = "%(name)s %(levelname)s %(message)s"
# syslog priorities (sd-daemon(3)): what journald files a line under
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}


class LogError(ValueError):
    """A logging setting that cannot be used (an unknown level, a file that cannot be opened)."""


class _JournalFormatter(logging.Formatter):
    """Prefixes each line with its syslog priority, which journald reads and strips."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prio = PRIORITY.get(record.levelno, 3 if record.levelno > logging.WARNING else 7)
        # a traceback's lines are separate journal entries: give each the priority too
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


class _Ours:
    """Marks the handlers `configure()` installed, so a second call replaces only those."""


class _StreamHandler(logging.StreamHandler, _Ours):
    pass


class _FileHandler(logging.handlers.WatchedFileHandler, _Ours):
    pass


def level_of(name: str) -> int:
    """A level name as the command line and the configuration give it (debug ... error)."""
    if name.lower() not in LEVELS:
        raise LogError(f"log level must be one of {', '.join(LEVELS)}, not {name!r}")
    return getattr(logging, name.upper())


def under_journald(stream: object = None) -> bool:
    """Is `stream` (stderr) connected to the journal? systemd says so in JOURNAL_STREAM
    (`device:inode` of the stream it handed over), which a child whose stderr was redirected
    must not trust: compare it with the stream itself."""
    wanted = os.environ.get("JOURNAL_STREAM", "")
    stream = sys.stderr if stream is None else stream
    try:
        st = os.fstat(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


def configure(level: str = "info", file: str | None = None) -> None:
    """Log at `level` and above to stderr (journald's format under systemd) and, if `file` is
    given, to that file with timestamps. Replaces what an earlier call installed."""
    levelno = level_of(level)
    handlers: list[logging.Handler] = []
    stderr = _StreamHandler(sys.stderr)
    stderr.setFormatter(_JournalFormatter(JOURNAL) if under_journald(sys.stderr)
                        else logging.Formatter(STAMPED))
    handlers.append(stderr)
    if file:
        try:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            handler = _FileHandler(file)
        except OSError as exc:
            raise LogError(f"cannot open log file {file}: {exc.strerror or exc}") from None
        handler.setFormatter(logging.Formatter(STAMPED))
        handlers.append(handler)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Ours)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(levelno)
