"""Who installs a bundle's requirements.txt: the dependency layer and the process runtime's venvs.

uv from the shared wheel cache (cmkit/engine/wheels.py), or pip from the index as DataRobot
builds (`--installer` of test-local, serve and watch). Names only: a leaf every layer may import.
"""

from __future__ import annotations

UV = "uv"
PIP = "pip"
INSTALLERS = (UV, PIP)
