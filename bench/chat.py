#!/usr/bin/env python3
"""Comparison: chat completions on cmkit's model runtime vs `drum server`, the same `custom.py`.

The model is `cmkit init --target-type textgeneration`'s: `chat()` answers from a table of
topics, and streams its answer word by word as `openai` chunks when asked. Both servers run one
worker process. Non-streaming completions come from 8 concurrent keep-alive clients (wrk) on
`POST chat/completions`; the time to the first streamed chunk is measured from the request to
the first `data:` event of a streaming completion, one connection, median of repeats. Issue 25's
goals: at least 2x DRUM's completions per second, at most 0.5x its time to the first chunk.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Load, Row, drum_with, python_env, ratio, script_main, server_process, wrk
from cmkit.engine.base import free_port
from cmkit.engine.process import server_command
from cmkit.scaffold import init_bundle, make_spec

PREFIX = "/bench/v1"
TARGET_TYPE = "textgeneration"
TARGET_NAME = "resultText"  # DRUM starts a text generation model only with one
# Streams through the raw client: a stream takes well under a millisecond there, and the median of
# a few is noise at that scale.
RAW_REPEATS = 200
QUESTION = {"model": "any", "messages": [{"role": "user", "content": "I was charged twice, can I get a refund?"}]}


@dataclass
class Side:
    load: Load
    first_chunk_seconds: float  # through requests, as a Python client sees it
    stream_seconds: float  # the whole streamed answer, to [DONE]
    first_bytes_seconds: float  # through a raw socket: the servers' own part


def bundle() -> Path:
    folder = WORK / "chat" / "helpdesk"
    if not (folder / "custom.py").is_file():
        init_bundle(folder, make_spec(TARGET_TYPE, "helpdesk"), force=True)
    return folder


def first_chunk_raw(url: str, repeats: int) -> float:
    """Median seconds from connecting to the first `data:` event's bytes, over `repeats` streams.

    A client of a few socket calls, as wrk is for throughput: what a Python HTTP client adds
    (requests builds the request and parses the headers in ~1 ms here) would otherwise hide the
    servers' difference. One new connection per stream on both sides: DRUM's server closes
    each connection, so reusing one would favour cmkit's keep-alive.
    """
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    body = json.dumps({**QUESTION, "stream": True}).encode()
    head = f"POST {address.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    request = f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    firsts = []
    for attempt in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        with socket.create_connection((host, port)) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.sendall(request)
            received, first = b"", None
            while chunk := connection.recv(65536):  # to the end: the server closes after the stream
                received += chunk
                if first is None and b"\r\n\r\n" in received and b"data:" in received.split(b"\r\n\r\n", 1)[1]:
                    first = time.perf_counter() - started
        if b"data: [DONE]" not in received or first is None:
            raise RuntimeError(f"not a complete stream: {received[:300]!r}")
        if attempt:
            firsts.append(first)
    firsts.sort()
    return firsts[len(firsts) // 2]


def first_chunk(url: str, repeats: int) -> tuple[float, float]:
    """Median seconds to the first `data:` event, and to the end of the stream, over `repeats` streams."""
    session = requests.Session()
    body = json.dumps({**QUESTION, "stream": True}).encode()
    firsts, wholes = [], []
    for attempt in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        first = None
        with session.post(url, data=body, headers={"Content-Type": "application/json"}, stream=True) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if line.startswith(b"data:") and first is None:
                    first = time.perf_counter() - started
                if line == b"data: [DONE]":
                    break
        if attempt and first is not None:
            firsts.append(first)
            wholes.append(time.perf_counter() - started)
    firsts.sort()
    wholes.sort()
    return firsts[len(firsts) // 2], wholes[len(wholes) // 2]


def measure(url: str, seconds: float, repeats: int, group: int) -> Side:
    body = json.dumps(QUESTION).encode()
    load = wrk(url, body, "application/json", connections=8, seconds=seconds, server_group=group)
    first, whole = first_chunk(url, repeats)
    return Side(load, first, whole, first_chunk_raw(url, RAW_REPEATS))


def cmkit_side(code: Path, seconds: float, repeats: int) -> Side:
    port = free_port()
    env = {**python_env(), "PORT": str(port), "URL_PREFIX": PREFIX, "CUSTOM_MODEL_WORKERS": "1"}
    env |= {"TARGET_TYPE": TARGET_TYPE, "TARGET_NAME": TARGET_NAME}
    url = f"http://127.0.0.1:{port}{PREFIX}"
    log = WORK / "chat" / "cmkit.log"
    with server_process(server_command(code), env, url + "/", cwd=code, log=log) as server:
        return measure(f"{url}/chat/completions", seconds, repeats, server.pid)


def drum_side(code: Path, seconds: float, repeats: int) -> Side:
    venv = drum_with("openai")  # the model's own dependency (its requirements.txt)
    port = free_port()
    command = [str(venv / "bin" / "drum"), "server", "--code-dir", str(code), "--address", f"127.0.0.1:{port}"]
    command += ["--target-type", TARGET_TYPE]
    env = {**python_env(), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "TARGET_NAME": TARGET_NAME}
    url = f"http://127.0.0.1:{port}"
    with server_process(command, env, url + "/", log=WORK / "chat" / "drum.log") as server:
        return measure(f"{url}/chat/completions", seconds, repeats, server.pid)


def run(quick: bool = False) -> list[Row]:
    seconds, repeats = (3.0, 5) if quick else (15.0, 21)
    code = bundle()
    ours, theirs = cmkit_side(code, seconds, repeats), drum_side(code, seconds, repeats)
    cpu_ours, cpu_theirs = ours.load.cpu_per_request_us, theirs.load.cpu_per_request_us
    rows = [
        Row(
            "chat: non-streaming completions/s (8 keep-alive clients, 1 worker)",
            f"{ours.load.requests_per_second:.0f}",
            f"{theirs.load.requests_per_second:.0f}",
            ratio(ours.load.requests_per_second, theirs.load.requests_per_second),
            ">= 2x",
        ),
        Row(
            "chat: server CPU per completion",
            f"{cpu_ours:.0f} us",
            f"{cpu_theirs:.0f} us",
            ratio(cpu_ours, cpu_theirs),
            "<= 0.5x",
        ),
        Row(
            "chat: completion p50 latency (under that load)",
            f"{ours.load.p50_ms:.2f} ms",
            f"{theirs.load.p50_ms:.2f} ms",
            ratio(ours.load.p50_ms, theirs.load.p50_ms),
            "",
        ),
        Row(
            "chat: time to the first streamed chunk (one client, a new connection, raw socket)",
            f"{ours.first_bytes_seconds * 1000:.2f} ms",
            f"{theirs.first_bytes_seconds * 1000:.2f} ms",
            ratio(ours.first_bytes_seconds, theirs.first_bytes_seconds),
            "<= 0.5x",
        ),
        Row(
            "chat: time to the first streamed chunk (one `requests` client, keep-alive where served)",
            f"{ours.first_chunk_seconds * 1000:.2f} ms",
            f"{theirs.first_chunk_seconds * 1000:.2f} ms",
            ratio(ours.first_chunk_seconds, theirs.first_chunk_seconds),
            "",
        ),
        Row(
            "chat: a whole streamed answer, to [DONE] (one client)",
            f"{ours.stream_seconds * 1000:.2f} ms",
            f"{theirs.stream_seconds * 1000:.2f} ms",
            ratio(ours.stream_seconds, theirs.stream_seconds),
            "",
        ),
    ]
    if ours.load.errors or theirs.load.errors:
        rows.append(Row("chat: load errors", str(ours.load.errors), str(theirs.load.errors)))
    return rows


if __name__ == "__main__":
    script_main(run, __doc__)
