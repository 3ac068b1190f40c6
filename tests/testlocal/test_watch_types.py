"""`test-local --watch` on every type served on other routes or with other answers than rows of numbers.

For each, `cmkit init`'s bundle is watched in the process runtime: the first run passes; an edit
that makes the type's own hook raise reloads the runtime's workers and fails the check that drives that
hook (errorCheck on /predictUnstructured/, /transform/ or predict_no_state; chatCompletions for
chat models); the edit undone passes again. The watch runs the type's own checks each time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.checks.chat import CHAT_CHECK
from cmkit.checks.results import ERROR_CHECK
from cmkit.scaffold import init_bundle, make_spec
from cmkit.testlocal import TestLocalConfig
from cmkit.watch import RELOADED, STARTED
from tests.testlocal.test_unstructured_local import THIS_RUNTIME
from tests.testlocal.test_watch import break_then_fix

pytestmark = pytest.mark.slow

# type -> (the hook an edit breaks, the check that must then fail)
BREAKS = {
    "unstructured": ("score_unstructured", ERROR_CHECK),
    "transform": ("transform", ERROR_CHECK),
    "geopoint": ("predict", ERROR_CHECK),
    "vectordatabase": ("predict", ERROR_CHECK),
    "textgeneration": ("chat", CHAT_CHECK),
    "agenticworkflow": ("chat", CHAT_CHECK),
}


@pytest.mark.parametrize("target_type", sorted(BREAKS))
def test_watch_reruns_each_type_s_checks(target_type: str, tmp_path: Path) -> None:
    hook, check = BREAKS[target_type]
    bundle = tmp_path / target_type
    init_bundle(bundle, make_spec(target_type, target_type))
    custom = bundle / "custom.py"
    broken = custom.read_text() + f"\n\ndef {hook}(*args, **kwargs):\n    raise RuntimeError('broken on purpose')\n"
    config = TestLocalConfig(bundle, runtime="process", server_environment=THIS_RUNTIME)
    first, failing, fixed = break_then_fix(config, custom, broken)
    assert first.action == STARTED and first.overall_status == "succeeded", first.report.results
    assert failing.action == RELOADED and failing.change is not None and failing.change.changed == ("custom.py",)
    assert failing.report.results[check].status == "failed", failing.report.results
    assert "broken on purpose" in failing.report.results[check].message
    assert fixed.overall_status == "succeeded" and fixed.report.results[check].status == "succeeded"
