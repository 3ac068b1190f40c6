"""Starting an emulator on its data directory: recover what an earlier run left, seed the environment.

This is the one module that calls into every resource module at once; `server.run()` (and the
in-process test harness) call `start` after the app is built and the port is taken, so a taken
port changes nothing on disk.
"""

from __future__ import annotations

from cmkit.emulator import datasets, deployments, environments, featureimpact, leftovers, models, status, testing
from cmkit.emulator.service import Emulator


def start(emu: Emulator) -> Emulator:
    """Recover from an earlier run, then make sure the seeded environment exists."""
    leftovers.clean(emu)
    recovers = (
        environments.recover,
        models.recover,
        testing.recover,
        datasets.recover,
        featureimpact.recover,
        deployments.recover,
    )
    for recover in recovers:
        recover(emu)
    status.recover_statuses(emu)
    environments.seed(emu)
    return emu
