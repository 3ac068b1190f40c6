"""The one zip writer: files spooled into a deflated zip, the upload DataRobot takes.

`cmkit env push` uploads an environment's docker context with it, and the emulator serves a
model version's files with it (what DataRobot's download returns).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO


def write_zip(members: Iterable[tuple[Path, str]], spool: IO[bytes]) -> IO[bytes]:
    """Write each (source file, path inside the archive) into `spool`, rewound for reading."""
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in members:
            archive.write(source, name)
    spool.seek(0)
    return spool
