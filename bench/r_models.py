#!/usr/bin/env python3
"""Comparison: an R model (an `lm` saved as .rds, DRUM's default R predictor) served by cmkit's runtime.

Against `drum server` on the same folder when DRUM's R path runs here (its venv with rpy2, and the
R packages its glue loads: caret, recipes, devtools, stringi, Matrix), and against the floor
whatever DRUM does: R's own loop, in one Rscript, of what a request must do at the least: read
one CSV row with `read.csv` and `predict()` it. Both servers run one worker (DataRobot's R
environment runs one), single-row requests from 8 keep-alive clients (wrk): cmkit JSON on
`predict_no_state/`, DRUM CSV on `predict/`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Load, Row, drum_with, python_env, ratio, script_main, server_process, wrk
from bench.server import cmkit_body
from cmkit.engine.base import free_port
from cmkit.engine.process import server_command

FOLDER = WORK / "r-model"
RPY2 = "rpy2==3.5.17"  # rpy2 3.6 needs R 4.3+; Debian bookworm's R is 4.2
TRAIN = """
set.seed(3)
d <- data.frame(x1 = rnorm(500), x2 = rnorm(500), x3 = sample(1:9, 500, TRUE))
d$y <- 3 * d$x1 - d$x2 + 0.2 * d$x3 + rnorm(500)
saveRDS(lm(y ~ x1 + x2 + x3, data = d), file.path(commandArgs(TRUE)[[1]], "model.rds"))
write.csv(d[1, c("x1", "x2", "x3")], file.path(commandArgs(TRUE)[[1]], "row.csv"), row.names = FALSE)
"""
FLOOR = """
m <- readRDS(file.path(commandArgs(TRUE)[[1]], "model.rds"))
csv <- paste(readLines(file.path(commandArgs(TRUE)[[1]], "row.csv")), collapse = "\\n")
n <- as.integer(commandArgs(TRUE)[[2]])
invisible(predict(m, read.csv(text = csv)))
started <- proc.time()[["elapsed"]]
for (i in seq_len(n)) predict(m, read.csv(text = csv, check.names = FALSE))
cat((proc.time()[["elapsed"]] - started) / n, "\\n")
"""


def build() -> Path:
    FOLDER.mkdir(parents=True, exist_ok=True)
    subprocess.run(["Rscript", "--vanilla", "-e", TRAIN, str(FOLDER)], check=True, capture_output=True)
    return FOLDER


def floor_seconds(rows: int) -> float:
    """R's own read.csv + predict() of one row, per row (one Rscript, after a warm-up)."""
    done = subprocess.run(
        ["Rscript", "--vanilla", "-e", FLOOR, str(FOLDER), str(rows)], check=True, capture_output=True, text=True
    )
    return float(done.stdout.split()[0])


def cmkit_load(row: pd.DataFrame, seconds: float) -> Load:
    port = free_port()
    env = {**python_env(), "PORT": str(port), "CUSTOM_MODEL_WORKERS": "1", "TARGET_TYPE": "regression"}
    url = f"http://127.0.0.1:{port}"
    with server_process(server_command(FOLDER), env, url + "/", cwd=FOLDER, log=WORK / "r-cmkit.log") as server:
        body = cmkit_body(row)
        return wrk(f"{url}/predict_no_state/", body, "application/json", seconds=seconds, server_group=server.pid)


def drum_load(seconds: float) -> Load | str:
    """DRUM's R path on the same folder, or why it cannot run here."""
    try:
        venv = drum_with(RPY2)
    except subprocess.CalledProcessError as exc:
        return f"n/a (rpy2 into DRUM's venv: {exc})"
    port = free_port()
    command = [str(venv / "bin" / "drum"), "server", "--code-dir", str(FOLDER), "--target-type", "regression"]
    command += ["--address", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    log = WORK / "r-drum.log"
    try:
        env = {**python_env(), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
        with server_process(command, env, url + "/", log=log) as s:
            body = (FOLDER / "row.csv").read_bytes()
            return wrk(f"{url}/predict/", body, "text/csv", seconds=seconds, server_group=s.pid)
    except RuntimeError:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
        return f"n/a (drum server's R path does not start here: {' '.join(tail)[:160]})"


def run(quick: bool = False) -> list[Row]:
    seconds, loops = (3.0, 200) if quick else (15.0, 2000)
    build()
    row = pd.read_csv(FOLDER / "row.csv")
    ours = cmkit_load(row, seconds)
    floor = floor_seconds(loops)
    floor_rps = 1 / floor
    theirs = drum_load(seconds)
    rows = [
        Row(
            "R lm (.rds): single-row req/s vs `drum server` (8 keep-alive clients, 1 worker)",
            f"{ours.requests_per_second:.0f}",
            f"{theirs.requests_per_second:.0f}" if isinstance(theirs, Load) else theirs,
            ratio(ours.requests_per_second, theirs.requests_per_second) if isinstance(theirs, Load) else "",
            ">= 1x",
        ),
        Row(
            "R lm (.rds): single-row req/s vs R's own read.csv + predict() loop (the floor)",
            f"{ours.requests_per_second:.0f}",
            f"{floor_rps:.0f}",
            ratio(ours.requests_per_second, floor_rps),
            "",
        ),
        Row(
            "R lm (.rds): server CPU per single-row request (R's loop: per row)",
            f"{ours.cpu_per_request_us:.0f} us",
            f"{floor * 1e6:.0f} us",
            ratio(ours.cpu_per_request_us, floor * 1e6),
            "",
        ),
    ]
    if isinstance(theirs, Load):
        rows.append(
            Row(
                "R lm (.rds): server CPU per single-row request vs `drum server`",
                f"{ours.cpu_per_request_us:.0f} us",
                f"{theirs.cpu_per_request_us:.0f} us",
                ratio(ours.cpu_per_request_us, theirs.cpu_per_request_us),
                "<= 1x",
            )
        )
    return rows


if __name__ == "__main__":
    started = time.time()
    script_main(run, __doc__)
    print(f"({time.time() - started:.0f} s)", file=sys.stderr)
