"""Every model of a repository: found, narrowed by git changes, split in stable shards (cmkit/repository.py)."""

from __future__ import annotations

import json
import random
import string
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.errors import InputError
from cmkit.repository import find_models, parse_shard, select_models, shard_of
from tests.support.bundles import write_files

ENV = "5e8c889607389fe0f466c72d"


def _bundle(folder: Path) -> Path:
    return write_files(folder, {"custom.py": "def predict(model, X):\n    return X\n", "requirements.txt": ""})


def _entry(path: str, model_id: str) -> str:
    return (
        f"  - model_path: {path}\n    model_metadata:\n      user_provided_model_id: {model_id}\n"
        f"      target_type: Regression\n      settings: {{name: {model_id}, target_name: y}}\n"
        f"      version: {{model_environment_id: {ENV}}}\n"
    )


def _git(root: Path, *args: str) -> str:
    command = ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository: two models in models.yaml, one model.yaml, two plain bundles, one of them nested."""
    root = tmp_path / "repo"
    for name in ("defs/a", "defs/b", "single", "plain/one", "plain/two", "plain/two/helpers"):
        _bundle(root / name)
    (root / "defs" / "models.yaml").write_text("datarobot_models:\n" + _entry("a", "a") + _entry("b", "b"))
    (root / "single" / "model.yaml").write_text(
        "user_provided_model_id: single\ntarget_type: Regression\nsettings: {name: s, target_name: y}\n"
        f"version: {{model_environment_id: {ENV}}}\n"
    )
    (root / ".github").mkdir()
    (root / ".github" / "ci.yaml").write_text("on: push\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "models")
    return root


def test_every_model_is_found_once_with_what_describes_it(repo: Path) -> None:
    found = [(m.name, m.path, m.definition is not None) for m in find_models(repo)]
    assert found == [
        ("a", "defs/a", True),
        ("b", "defs/b", True),
        ("plain/one", "plain/one", False),
        ("plain/two", "plain/two", False),  # its helpers/ folder is the bundle's own
        ("single", "single", True),
    ]


def test_an_id_defined_twice_in_the_repository_is_bad_input(repo: Path) -> None:
    (repo / "plain" / "one" / "model.yaml").write_text((repo / "single" / "model.yaml").read_text())
    with pytest.raises(InputError, match="'single' is also defined"):
        find_models(repo)
    result = CliRunner().invoke(main, ["list", str(repo), "--json"])
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["line"] == 1


def _ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(string.ascii_lowercase + "-/", k=rng.randint(1, 30))) for _ in range(count)]


@pytest.mark.parametrize("total", [1, 2, 3, 5, 8])
def test_each_identity_has_exactly_one_shard_and_keeps_it_when_models_are_added(total: int) -> None:
    before = _ids(300, seed=total)
    assigned = {identity: shard_of(identity, total) for identity in before}
    assert set(assigned.values()) <= set(range(1, total + 1))
    after = before + _ids(300, seed=total + 100)
    assert {identity: shard_of(identity, total) for identity in before} == assigned
    shares = [sum(1 for identity in after if shard_of(identity, total) == shard) for shard in range(1, total + 1)]
    assert sum(shares) == len(after) and min(shares) > len(after) / total / 2  # every shard gets its share


def test_the_shards_of_a_repository_partition_it_and_survive_a_new_model(repo: Path) -> None:
    everything = {m.name for m in find_models(repo)}
    shards = [{m.name for m in select_models(repo, shard=f"{i}/3").models} for i in (1, 2, 3)]
    assert set().union(*shards) == everything and sum(len(s) for s in shards) == len(everything)
    _bundle(repo / "plain" / "three")
    again = [{m.name for m in select_models(repo, shard=f"{i}/3").models} for i in (1, 2, 3)]
    assert [s - {"plain/three"} for s in again] == shards


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_a_bad_shard_is_bad_input(text: str) -> None:
    with pytest.raises(InputError, match="bad --shard"):
        parse_shard(text)


def test_changed_since_picks_exactly_the_changed_models(repo: Path) -> None:
    def changed(ref: str = "HEAD") -> list[str]:
        return [m.name for m in select_models(repo, changed_since=ref).models]

    assert changed() == []
    (repo / "plain" / "two" / "helpers" / "custom.py").write_text("# edited\n")  # unstaged, in a subfolder
    (repo / "defs" / "b" / "new.txt").write_text("untracked\n")
    assert changed() == ["b", "plain/two"]
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "edit")
    assert changed() == [] and changed("HEAD~1") == ["b", "plain/two"]
    text = (repo / "defs" / "models.yaml").read_text().replace("name: a,", "name: renamed,")
    (repo / "defs" / "models.yaml").write_text(text)  # the definitions file: its models
    (repo / ".github" / "ci.yaml").write_text("on: [push]\n")  # no model's
    assert changed() == ["a", "b"]
    (repo / "single" / "custom.py").unlink()  # a deletion
    assert changed() == ["a", "b", "single"]


def test_changed_since_an_unknown_ref_is_bad_input_with_the_fetch_hint(repo: Path) -> None:
    result = CliRunner().invoke(main, ["test-local", "--all", str(repo), "--changed-since", "nope", "--json"])
    assert result.exit_code == 2
    assert "fetch-depth" in json.loads(result.stdout)["error"]["hint"]


def test_list_prints_the_models_and_shards_for_a_ci_matrix(repo: Path) -> None:
    result = CliRunner().invoke(main, ["list", str(repo), "--shards", "2", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["shards"] == ["1/2", "2/2"]
    assert document["selection"] == {
        "root": str(repo),
        "found": 5,
        "selected": 5,
        "changedSince": None,
        "shard": None,
    }
    first = document["models"][0]
    assert first == {
        "name": "a",
        "path": "defs/a",
        "userProvidedId": "a",
        "definition": "defs/models.yaml:3",  # its model_metadata
        "targetType": "regression",
        "shard": f"{shard_of('a', 2)}/2",
    }
    shown = CliRunner().invoke(main, ["list", str(repo), "--shards", "2"])
    assert f"defs/a  a (defs/models.yaml:3)  shard {shard_of('a', 2)}/2" in shown.output
    assert "5 of 5 model(s)" in shown.output
    one = CliRunner().invoke(main, ["list", str(repo), "--shard", "1/2", "--json"])
    assert {m["shard"] for m in json.loads(one.stdout)["models"]} == {"1/2"}


def test_selection_flags_without_all_are_a_usage_error(repo: Path) -> None:
    result = CliRunner().invoke(main, ["lint", str(repo / "single"), "--shard", "1/2"])
    assert result.exit_code == 2 and "add --all" in result.output
