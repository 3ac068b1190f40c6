"""cmkit/serve.py in-process with the process runtime, on bundles whose start_server.sh is a
standard-library HTTP server (a model server is the slow tier's: tests/testlocal/test_process.py
drives `cmkit serve` itself): serve_bundle returns once the server answers, describes it, and
stops it; a server that cannot start is stopped and reported."""

from __future__ import annotations

import textwrap
import urllib.request
from pathlib import Path

import pytest

from cmkit.serve import serve_bundle
from cmkit.testlocal import StartFailed, TestLocalConfig
from tests.engine.test_process import running
from tests.support.bundles import write_static_bundle

# Answers 200 on the URL prefix (longRunningService's readiness route), 404 elsewhere; exits 2 on
# GET .../crash.
SERVER = """\
#!/bin/sh
exec python -c '
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

PREFIX = "/" + os.environ["URL_PREFIX"].strip("/")

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/crash"):
            os._exit(2)
        found = self.path.rstrip("/") == PREFIX.rstrip("/")
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        print(self.requestline, flush=True)

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'
"""


def bundle_with(folder: Path, script: str) -> Path:
    return write_static_bundle(folder, textwrap.dedent(script))


def test_serve_returns_once_the_server_answers_and_close_stops_it(tmp_path: Path) -> None:
    config = TestLocalConfig(bundle=bundle_with(tmp_path / "m", SERVER), runtime="process", url_prefix="/a/b")
    session = serve_bundle(config, startup_timeout=30)
    try:
        described = session.to_dict()
        assert described["url"] == session.server.url + "/" and described["url"].endswith("/a/b/")
        assert described["urlPrefix"] == "/a/b" and described["runtime"] == "process"
        assert isinstance(described["pid"], int) and described["protocol"] == (
            session.protocol and session.protocol.to_dict()
        )
        with urllib.request.urlopen(described["url"], timeout=5) as answer:
            assert answer.status == 200 and answer.read() == b"ok"
        assert not session.failed  # running
    finally:
        session.close()
    assert session.survivors() == []
    assert "GET /a/b/ HTTP/1.1" in session.server.logs(None)
    assert not session.failed, "a server stopped by the user did not fail"


def test_a_server_that_ends_on_its_own_with_an_error_failed(tmp_path: Path) -> None:
    config = TestLocalConfig(bundle=bundle_with(tmp_path / "m", SERVER), runtime="process", url_prefix="/")
    session = serve_bundle(config, startup_timeout=30)
    try:
        with pytest.raises(OSError):  # the connection closes without an answer
            urllib.request.urlopen(session.server.url + "/crash", timeout=5)
        session.server.process.wait(timeout=5)  # type: ignore[attr-defined]
        assert session.failed
    finally:
        session.close()
    assert session.failed  # `cmkit serve` exits 1


def test_a_server_that_exits_at_start_is_a_start_failure_naming_its_code(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path / "m", "#!/bin/sh\necho 'no model here'\nexit 3\n")
    with pytest.raises(StartFailed) as raised:
        serve_bundle(TestLocalConfig(bundle=bundle, runtime="process"), startup_timeout=30)
    assert "exited with code 3" in str(raised.value) and "no model here" in str(raised.value)


def test_a_server_that_never_answers_200_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    bundle = bundle_with(tmp_path / "m", f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    with pytest.raises(StartFailed, match=r"did not answer 200 within 0\.3s \(last: connection failed"):
        serve_bundle(TestLocalConfig(bundle=bundle, runtime="process"), startup_timeout=0.3)
    assert not running(int(pid_file.read_text()))
