"""The guard: a run's leads over DRUM against the committed baseline (bench/baseline.json).

A figure with a `lead` (bench/common.py's Row: how many times less CPU than DRUM's server a
request costs, say) is compared with the baseline's value for the same figure. Only a large drop
fails (more than ALLOWED_DROP of the baseline's lead): a shared machine moves these figures by a
few percent, a regression like issue 23's (a third of the runtime's lead) by far more. The
baseline is written by `bench/run --write-baseline`, from a run on a quiet machine, and
committed with the change that moved it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BASELINE = Path(__file__).resolve().parent / "baseline.json"
ALLOWED_DROP = 0.25


@dataclass(frozen=True)
class Verdict:
    figure: str
    baseline: float
    now: float

    @property
    def change(self) -> float:
        return self.now / self.baseline - 1

    @property
    def dropped(self) -> bool:
        return self.now < self.baseline * (1 - ALLOWED_DROP)

    def line(self) -> str:
        state = "DROPPED" if self.dropped else "ok"
        return f"{state}: {self.figure}: {self.now:.2f}x DRUM (baseline {self.baseline:.2f}x, {self.change:+.0%})"


def read_baseline(path: Path = BASELINE) -> dict[str, float]:
    if not path.is_file():
        return {}
    document = json.loads(path.read_text())
    return {str(figure): float(lead) for figure, lead in document["leads"].items()}


def write_baseline(leads: Mapping[str, float], note: str, path: Path = BASELINE) -> None:
    """Merge this run's leads into the baseline (figures this run did not measure are kept)."""
    merged = read_baseline(path) | dict(leads)
    document = {"note": note, "leads": dict(sorted(merged.items()))}
    path.write_text(json.dumps(document, indent=2) + "\n")


def compare(baseline: Mapping[str, float], leads: Mapping[str, float]) -> list[Verdict]:
    """A verdict for each figure both hold; a figure new to this run has nothing to be held to."""
    return [Verdict(figure, baseline[figure], lead) for figure, lead in leads.items() if figure in baseline]


def report(verdicts: list[Verdict], unguarded: list[str]) -> str:
    lines = [f"Guard (fails on a drop of more than {ALLOWED_DROP:.0%} from bench/baseline.json):"]
    lines += [f"- {verdict.line()}" for verdict in verdicts]
    lines += [f"- new, not in the baseline: {figure}" for figure in unguarded]
    return "\n".join(lines)
