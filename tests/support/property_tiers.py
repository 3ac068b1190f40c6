"""Property tests in two tiers: a sample of their examples in the fast tier, all of them in the slow one.

A property test takes `examples` from `@tiers(n)` and runs its `@given` body with that many:
the fast tier (`-m 'not docker and not slow'`) runs a fifth of `n` (at least `MIN_SAMPLE`), the
slow tier, which CI runs with every other, runs `n` again. Generation stays random in both and
the example database is shared (the body is the same function), so a failure either tier finds
is replayed first by the next run of both. See CONTRIBUTING.md, "Property tests".
"""

from __future__ import annotations

import pytest

SAMPLE_SHARE = 5
MIN_SAMPLE = 10


def sample_size(examples: int) -> int:
    return min(examples, max(MIN_SAMPLE, examples // SAMPLE_SHARE))


def tiers(examples: int) -> pytest.MarkDecorator:
    """Parametrize a test's `examples`: a sample of `examples` in the fast tier, all of them marked slow."""
    return pytest.mark.parametrize(
        "examples",
        [
            pytest.param(sample_size(examples), id="sample"),
            pytest.param(examples, id="full", marks=pytest.mark.slow),
        ],
    )
