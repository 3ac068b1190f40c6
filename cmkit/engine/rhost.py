"""R bundles on this machine: what the process runtime needs to serve one, said in one line when missing.

An R bundle (custom.R or an .rds, no custom.py: `cmkit_runtime.formats.is_r_bundle`) is served
by cmkit_runtime in cmkit's own Python through rpy2, with the host's R. Its requirements.txt
names R packages, one per line, as DataRobot's R environments take them (not pip
requirements: the process runtime builds no venv for it). Before the server starts, this
module says which of R, rpy2 or those packages is missing, instead of a traceback in the log.

`--isolate` (`isolated_r_environment`): the server's R sees one library folder, of links to the R
environment's packages, the ones requirements.txt names and every package they depend on, plus R's
own library (base and recommended packages): an undeclared `library(stringr)` fails as it does in
the R environment's image. The Python side is a venv of the R environment's requirements.txt
(`cmkit.testlocal`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cmkit.errors import CmkitError
from cmkit.paths import cache_dir
from cmkit_runtime.formats import is_r_bundle

REQUIREMENTS_FILE = "requirements.txt"
# An R package name (letters, digits, dots; starts with a letter); what follows (a version
# constraint, a comment) is not a name.
PACKAGE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9.]*)")
RPY2_PIN = "rpy2>=3.5,<3.6"  # rpy2 3.6 needs R 4.3 or later; Debian bookworm's R is 4.2
CHECK_SECONDS = 60.0
# What templates/environments/r installs besides R (its Dockerfile's r-cran-* packages: a test keeps
# the two equal): an isolated process sees these, as a model in that environment's image does.
ENVIRONMENT_R_PACKAGES = ("caret", "glmnet", "recipes", "stringi", "Matrix")
# The packages asked for and every package they depend on (Depends, Imports), each with its folder,
# except those in R's own library (.Library), which R always searches.
CLOSURE_PROGRAM = r"""
wanted <- commandArgs(TRUE)
ip <- installed.packages()
ip <- ip[!duplicated(ip[, "Package"]), , drop = FALSE]
rownames(ip) <- ip[, "Package"]
found <- intersect(wanted, rownames(ip))
deps <- unlist(tools::package_dependencies(found, db = ip, which = c("Depends", "Imports"), recursive = TRUE))
base <- normalizePath(.Library)
for (name in intersect(unique(c(found, deps)), rownames(ip))) {
  folder <- normalizePath(ip[name, "LibPath"])
  if (folder != base) cat(name, "\t", file.path(folder, name), "\n", sep = "")
}
"""


def r_packages(text: str) -> list[str]:
    """The R packages a requirements.txt names, in order, without duplicates."""
    names: list[str] = []
    for line in text.splitlines():
        stripped = line.split("#", 1)[0]
        found = PACKAGE.match(stripped)
        if found and found.group(1) not in names:
            names.append(found.group(1))
    return names


def bundle_r_packages(bundle: Path) -> list[str]:
    path = bundle / REQUIREMENTS_FILE
    return r_packages(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else []


def missing_r_packages(packages: list[str], rscript: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Those of `packages` this R cannot load (one Rscript run for all)."""
    if not packages:
        return []
    names = ", ".join(f'"{name}"' for name in packages)
    program = f'for (p in c({names})) if (!requireNamespace(p, quietly = TRUE)) cat(p, "\\n", sep = "")'
    done = subprocess.run(
        [rscript, "--vanilla", "-e", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=CHECK_SECONDS,
        check=False,
        env=None if environ is None else dict(environ),
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def host_problem(bundle: Path, server_environment: Mapping[str, str] | None = None) -> str | None:
    """Why this machine cannot serve the R bundle with the process runtime, or None (also for non-R bundles).

    `server_environment`: the `--env` variables the server gets (R_LIBS may name a library folder).
    """
    if not is_r_bundle(bundle):
        return None
    rscript = shutil.which("Rscript")
    if rscript is None:
        return (
            "this is an R model (custom.R or .rds) and R is not installed here: install it (Debian/Ubuntu: "
            "apt-get install r-base-core) or use --runtime docker, which builds cmkit's R environment"
        )
    if importlib.util.find_spec("rpy2") is None:
        return (
            f"this is an R model (custom.R or .rds): cmkit's Python needs rpy2 to serve it (pip install '{RPY2_PIN}'), "
            "or use --runtime docker, which builds cmkit's R environment"
        )
    environ = {**os.environ, **(server_environment or {})}
    missing = missing_r_packages(bundle_r_packages(bundle), rscript, environ)
    if missing:
        return (
            f"requirements.txt names the R package{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which this "
            "machine's R does not have: install it (Debian: apt-get install r-cran-<name>; else install.packages()) "
            "or use --runtime docker"
        )
    return None


R_LIBRARIES = "r-libraries"  # in cmkit's cache folder: one folder of links per isolated library


class RLibraryFailed(CmkitError):
    """The isolated R library could not be made; the message says why."""


def isolated_r_environment(bundle: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that give the server's R only the R environment's and the bundle's packages.

    The library is a folder of links (kept in cmkit's cache, named by what it holds), set as both
    R_LIBS_SITE and R_LIBS_USER. `--env R_LIBS=...` still adds a library in front, as R reads it.
    Debian's R also adds /usr/local/lib/R/site-library (where `install.packages()` puts a package
    installed as root) at every start: that folder is not hidden (docs/runtime.md).
    """
    rscript = shutil.which("Rscript")
    if rscript is None:  # host_problem says so before any start
        raise RLibraryFailed("R is not installed here")
    wanted = list(dict.fromkeys([*ENVIRONMENT_R_PACKAGES, *bundle_r_packages(bundle)]))
    try:
        done = subprocess.run(
            [rscript, "--vanilla", "-e", CLOSURE_PROGRAM, *wanted],
            capture_output=True,
            text=True,
            timeout=CHECK_SECONDS,
            check=True,
            env=dict(environ),
        )
        links = sorted(tuple(line.split("\t", 1)) for line in done.stdout.splitlines() if "\t" in line)
        library = _library_of(links)
    except subprocess.CalledProcessError as exc:
        raise RLibraryFailed(f"R could not list the packages' dependencies: {exc.stderr.strip()[-500:]}") from exc
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise RLibraryFailed(f"the isolated R library could not be made: {exc}") from exc
    return {"R_LIBS_SITE": str(library), "R_LIBS_USER": str(library)}


def _library_of(links: list[tuple[str, ...]]) -> Path:
    """A folder holding a link per (package, folder), built once and renamed into place whole."""
    key = hashlib.sha256(repr(links).encode()).hexdigest()[:20]
    final = cache_dir() / R_LIBRARIES / key
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}-"))
    for name, folder in links:
        (work / name).symlink_to(folder, target_is_directory=True)
    try:
        os.rename(work, final)
    except OSError:  # another run built the same library meanwhile: theirs is as good
        shutil.rmtree(work, ignore_errors=True)
    return final
