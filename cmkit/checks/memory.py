"""The model server's peak memory while a check loads it, as `docker stats` shows it.

Docker: the container's memory usage from the engine's stats stream (one sample a second),
less the reclaimable page cache as `docker stats` computes it; cgroup v1 engines also report
the kernel's own high-water mark (`max_usage`), which then wins. Process runtime: the resident
set size summed over the server's process group (start_server.sh and everything it started),
read from /proc every 0.2 s; elsewhere (macOS) nothing is measured and the report says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from cmkit.engine.base import Server

PROCESS_SAMPLE_SECONDS = 0.2


def _docker_usage(stats: dict[str, Any]) -> int | None:
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    details = memory.get("stats") or {}
    cache = details.get("inactive_file", details.get("total_inactive_file", 0))
    return max(int(memory.get("max_usage") or 0), int(usage) - int(cache))


def _group_rss(pgid: int) -> int | None:
    """Resident bytes of every process in process group `pgid` (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Fields after the parenthesised command name: state ppid pgrp ... (rss is field 24).
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) == pgid:
                total += int(stat[21]) * page
    return total


class PeakMemory:
    """Samples the server's memory on a thread from `start()` to `stop()`; `peak` in bytes."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak: int | None = None
        self.samples = 0
        self.source = "not measured"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None

    def _record(self, value: int | None) -> None:
        if value is not None:
            self.samples += 1
            self.peak = value if self.peak is None else max(self.peak, value)

    def _sample_docker(self, container: Any) -> None:
        with contextlib.suppress(Exception):  # the container may go away mid-stream
            self._stream = container.stats(stream=True, decode=True)
            for stats in self._stream:
                self._record(_docker_usage(stats))
                if self._stop.is_set():
                    break

    def _sample_process(self, pgid: int) -> None:
        while not self._stop.is_set():
            self._record(_group_rss(pgid))
            self._stop.wait(PROCESS_SAMPLE_SECONDS)

    def start(self) -> PeakMemory:
        container = getattr(self.server, "container", None)
        process = getattr(self.server, "process", None)
        if container is not None:
            self.source = "docker stats"
            target: Any = (self._sample_docker, container)
        elif process is not None and Path("/proc").is_dir():
            self.source = "process group RSS (/proc)"
            target = (self._sample_process, process.pid)
        else:
            return self
        self._thread = threading.Thread(target=target[0], args=target[1:], daemon=True, name="cmkit-memory")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is None:
            return
        # The stats stream yields about once a second: wait for one more sample, not forever.
        self._thread.join(timeout=3.0)
        with contextlib.suppress(Exception):
            if self._stream is not None and hasattr(self._stream, "close"):
                self._stream.close()
        container = getattr(self.server, "container", None)
        if self.samples == 0 and container is not None:
            # A check shorter than the stream's first sample: one direct reading instead.
            with contextlib.suppress(Exception):
                self._record(_docker_usage(container.stats(stream=False)))

    def to_dict(self) -> dict[str, object]:
        return {"peakMemoryBytes": self.peak, "memorySource": self.source, "memorySamples": self.samples}

    def describe(self) -> str:
        if self.peak is None:
            return "peak memory not measured"
        return f"peak memory {self.peak / 1024**2:.1f} MiB ({self.source})"
