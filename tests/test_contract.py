"""The backend contract (common/contract.py): every backend defines the same
public names, in the same order, with the same signatures, and the checker
catches a backend that departs from it."""

import shutil
from pathlib import Path

import pytest

from common import contract
from common.backends import FRAMEWORKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", [fw.package for fw in FRAMEWORKS.values()])
def test_every_backend_follows_the_contract(package):
    assert contract.check(ROOT / package) == []


def test_the_contract_covers_every_backend_module():
    for fw in FRAMEWORKS.values():
        modules = {p.stem for p in (ROOT / fw.package).glob("*.py")} - {"__init__", "compat"}
        assert modules == set(contract.MODULES), fw.package


@pytest.fixture
def broken(tmp_path):
    """A copy of dcgan_tf to break."""
    copy = tmp_path / "dcgan_tf"
    shutil.copytree(ROOT / "dcgan_tf", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_changed_signature_is_caught(broken):
    edit(broken / "train.py", "def loss(logits, y):", "def loss(y, logits):")
    edit(broken / "model.py", 'def build_generator(spec: ModelSpec, dtype: str = "float32")',
         'def build_generator(spec: ModelSpec, dtype: str = "float64")')
    problems = contract.check(broken)
    assert "dcgan_tf/train.py: loss(y, logits) differs from the contract's loss(logits, y)" in problems
    assert any(p.startswith("dcgan_tf/model.py: build_generator(spec, dtype='float64') differs") for p in problems)
    assert len(problems) == 2, problems


def test_a_public_function_in_one_backend_only_is_caught(broken):
    (broken / "weights.py").write_text((broken / "weights.py").read_text() + "\n\ndef to_keras(x):\n    return x\n")
    assert contract.check(broken) == [
        "dcgan_tf/weights.py: to_keras is public but not in the contract (make it private, or add it to "
        "common/contract.py and every backend)"]


def test_a_missing_name_and_another_order_are_caught(broken):
    edit(broken / "core.py", "def versions() -> dict:", "def _versions() -> dict:")
    text = (broken / "weights.py").read_text()
    export = text[text.index("def export_canonical"):text.index("def parameters")]
    (broken / "weights.py").write_text(text.replace(export, "") + "\n\n" + export)
    problems = contract.check(broken)
    assert "dcgan_tf/core.py: versions is missing" in problems
    assert any(p.startswith("dcgan_tf/weights.py: public names in another order") for p in problems)


def test_the_books_blocks_keep_their_own_signatures():
    # The one exception, stated in the contract: the chapter's G_block/D_block signatures differ.
    sigs = {fw.package: contract.signature(dict(contract.public(
        contract.ast.parse((ROOT / fw.package / "model.py").read_text())))["G_block"])
        for fw in FRAMEWORKS.values()}
    assert len(set(sigs.values())) == 3, sigs


def test_the_command_reports(capsys):
    assert contract.main([]) == 0
    assert "every module follows the backend contract" in capsys.readouterr().out
