"""Run DataRobot's custom-models GitHub Action's own functional suite against a fresh `cmkit emulator`.

    python tools/action_suite.py SOURCE [--ref COMMIT] [--python PYTHON] [--workdir DIR] [-- PYTEST_ARGS...]

SOURCE is a fetched copy of datarobot-oss/custom-models-action: a checked-out folder, or
anything `git clone` takes (a URL, a local or bare repository), then checked out at `--ref`.
The Action is never vendored into this repository. Its `tests/functional/` runs unmodified,
from the Action's folder, with `DATAROBOT_WEBSERVER` / `DATAROBOT_API_TOKEN` pointing at an
emulator started for the run (process runtime, its own data dir and token), which is stopped
at the end. Prints one line per failed test and `passed N of M`; exit 0 when all passed, 1
otherwise, 2 when the suite could not be run.

The suite's Python needs the Action's requirements (src/requirements.txt, plus pytest, mock,
responses and bson from tests/requirements.txt). Without `--python` a virtualenv is made in the
work dir and they are installed with pip (an index must be reachable), with GitPython below
3.2: 3.2 puts `--` before `Repo.delete_head`'s branch names, so the suite's
`delete_head(name, "--force")` asks git to delete a branch called `--force` and fails; the
Action pins no version, and its runs before 3.2 had 3.1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

SUITE_REQUIREMENTS = ("pytest", "mock", "responses", "bson", "GitPython<3.2")
READY_TIMEOUT = 60.0


def action_folder(source: str, ref: str | None, workdir: Path) -> Path:
    """The Action's files: SOURCE itself when it is a checked-out Action, else a clone of it."""
    folder = Path(source)
    if (folder / "src" / "dr_client.py").is_file() and ref is None:
        return folder.resolve()
    target = workdir / "action"
    subprocess.run(["git", "clone", "--quiet", source, str(target)], check=True)
    if ref:
        subprocess.run(["git", "-C", str(target), "checkout", "--quiet", ref], check=True)
    return target


def suite_python(action: Path, workdir: Path) -> Path:
    """A virtualenv with the Action's requirements and the suite's test tools."""
    where = workdir / "venv"
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(action / "src" / "requirements.txt"), *SUITE_REQUIREMENTS], check=True)
    return python


class Emulator:
    """`cmkit emulator` on a free port, process runtime, its own data dir and token."""

    def __init__(self, workdir: Path) -> None:
        self.token = secrets.token_hex(16)
        token_file = workdir / "token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        command = [sys.executable, "-m", "cmkit", "emulator", "--json", "--port", "0", "--runtime", "process"]
        command += ["--data-dir", str(workdir / "emulator"), "--token-file", str(token_file)]
        self.log = (workdir / "emulator.log").open("w")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the emulator did not start: see {workdir / 'emulator.log'}")
        self.endpoint = str(json.loads(line)["endpoint"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def run_suite(action: Path, python: Path, emulator: Emulator, junit: Path, pytest_args: list[str]) -> int:
    environment = {
        **os.environ,
        "DATAROBOT_WEBSERVER": emulator.endpoint,
        "DATAROBOT_API_TOKEN": emulator.token,
        "PYTHONPATH": f"{action}{os.pathsep}{action / 'src'}",
    }
    command = [str(python), "-m", "pytest", "tests/functional", "-p", "no:cacheprovider", "-q"]
    command += [f"--junitxml={junit}", *pytest_args]
    return subprocess.run(command, cwd=action, env=environment, check=False).returncode


def summary(junit: Path) -> tuple[int, list[str]]:
    """(tests run, names of those that failed or errored) from pytest's JUnit report."""
    cases = ET.parse(junit).getroot().iter("testcase")
    total, failed = 0, []
    for case in cases:
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return total, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the Action: a checked-out folder, or a git URL or repository to clone")
    parser.add_argument("--ref", help="the commit to check out (cloned sources)")
    parser.add_argument("--python", type=Path, help="a Python with the suite's requirements (default: a new venv)")
    parser.add_argument("--workdir", type=Path, help="where the clone, venv and emulator live (default: a temp dir)")
    argv = sys.argv[1:] if argv is None else argv
    # What follows `--` goes to pytest as it is (argparse would take its options for ours).
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cmkit-action-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        action = action_folder(args.source, args.ref, workdir)
        python = args.python or suite_python(action, workdir)
        emulator = Emulator(workdir)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        print(f"error: the suite could not be run: {exc}", file=sys.stderr)
        return 2
    junit = workdir / "junit.xml"
    try:
        run_suite(action, python, emulator, junit, pytest_args)
    finally:
        emulator.stop()
    if not junit.is_file():
        print("error: pytest wrote no report", file=sys.stderr)
        return 2
    total, failed = summary(junit)
    for name in failed:
        print(f"failed: {name}")
    print(f"passed {total - len(failed)} of {total}")
    return 0 if total and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
