"""custom.R read statically for `cmkit lint`: R's own parser when R is installed, else a plain scan.

With `Rscript` on the PATH, one `Rscript --vanilla` run parses custom.R with `parse()` (a syntax
error comes back with its line, as R reports it) and lists the functions it assigns at the top
level (`name <- function(...)`, `name = function(...)`), which are the hooks DRUM looks up.
Without R, the top-level assignments are found by a line scan and the syntax is not judged
(lint says so in a note): lint never needs R, it only uses it when it is there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PARSE_SECONDS = 30.0
# What the R program prints: "ok" then one hook name a line, or "error", the line, R's message.
PARSE_PROGRAM = r"""
f <- commandArgs(trailingOnly = TRUE)[[1]]
exprs <- tryCatch(parse(file = f, keep.source = FALSE), error = function(e) e)
if (inherits(exprs, "error")) {
  message <- conditionMessage(exprs)
  where <- regmatches(message, regexpr(":[0-9]+:[0-9]+:", message))
  line <- if (length(where)) strsplit(where, ":")[[1]][[2]] else ""
  first <- sub("^.*:[0-9]+:[0-9]+: ", "", strsplit(message, "\n")[[1]][[1]])  # "unexpected '}'"
  cat("error", line, first, sep = "\n")
} else {
  cat("ok\n")
  for (e in exprs) {
    if (is.call(e) && as.character(e[[1]]) %in% c("<-", "=") && is.name(e[[2]]) &&
        is.call(e[[3]]) && identical(e[[3]][[1]], as.name("function"))) cat(as.character(e[[2]]), "\n", sep = "")
  }
}
"""
# Without R: a top-level `name <- function` or `name = function` at the start of a line.
ASSIGNED_FUNCTION = re.compile(r"^([A-Za-z.][A-Za-z0-9._]*)\s*(?:<-|=)\s*function\b", re.MULTILINE)


@dataclass(frozen=True)
class RSource:
    defined: frozenset[str]  # the functions custom.R assigns at the top level
    parsed_by_r: bool  # False: R is not installed, the names come from a line scan
    error: str | None = None  # R's parse error message
    error_line: int | None = None


def read_r_source(path: Path) -> RSource:
    """custom.R's hooks and syntax (see the module doc)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return _scanned(path)
    try:
        done = subprocess.run(
            [rscript, "--vanilla", "-e", PARSE_PROGRAM, str(path)],  # Rscript adds --args itself,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            timeout=PARSE_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return _scanned(path)
    return from_parser_output(done.stdout) or _scanned(path)


def from_parser_output(stdout: str) -> RSource | None:
    """What PARSE_PROGRAM printed, read; None when it did not run (R failed before it printed)."""
    lines = stdout.splitlines()
    if not lines or lines[0] not in ("ok", "error"):
        return None
    if lines[0] == "error":
        line = lines[1] if len(lines) > 1 else ""
        message = " ".join(" ".join(lines[2:]).split()) or "custom.R does not parse"
        return RSource(frozenset(), True, message, int(line) if line.isdigit() else None)
    return RSource(frozenset(name for name in lines[1:] if name), True)


def _scanned(path: Path) -> RSource:
    text = path.read_text(encoding="utf-8", errors="replace")
    return RSource(frozenset(ASSIGNED_FUNCTION.findall(text)), False)
