"""Suite validation: every user mistake is one clear message naming the dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpbench.errors import UserError
from mpbench.plan.spec import expand
from mpbench.train.load import load_suite

pytestmark = pytest.mark.unit

BASE = """\
name: t
models: [gpt-tiny]
precisions: [fp32, bf16]
train: {batch_size: 2, seq_len: 16, steps: 2, warmup_steps: 1}
data: {source: synthetic}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def error_of(path: Path, kind: str = "cpu") -> str:
    with pytest.raises(UserError) as info:
        load_suite(path, kind)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


def test_valid_suite_loads_and_expands(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, BASE + "seeds: 2\n"), "cpu")
    runs = expand(suite)
    assert [r.precision.name for r in runs] == ["fp32", "bf16", "fp32", "bf16"]  # interleaved
    assert [r.seed for r in runs] == [0, 0, 1, 1]
    assert runs[0].run_id == "gpt-tiny__fp32__b2-t16__seed0"
    assert suite.profile == "default"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, BASE.replace("steps: 2,", "stepz: 2,")))
    assert msg.startswith(f"{tmp_path / 'suite.yaml'}: train.stepz: unknown key; did you mean 'steps'?")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, BASE + "precision: [fp32]\n"))
    assert "precision: unknown key; did you mean 'precisions'?" in msg


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("steps: 2,", "steps: 0,", "train.steps: input should be greater than 0 (got 0)"),
        ("batch_size: 2,", "batch_size: 0,", "train.batch_size: input should be greater than 0 (got 0)"),
        ("steps: 2,", "steps: many,", "train.steps: input should be a valid integer"),
        ("seq_len: 16,", "seq_len: 4096,", "train.seq_len: 4096 is over the maximum 256 of models[0] (gpt-tiny)"),
    ],
)
def test_bad_values_name_path_value_and_fix(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path, BASE.replace(old, new)))


def test_unknown_recipe_lists_valid_ones(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, BASE.replace("[fp32, bf16]", "[fp32, bf61]")))
    assert "precisions[1]: unknown precision 'bf16'" not in msg
    assert "precisions[1]: unknown precision 'bf61'; did you mean 'bf16'? valid: " in msg
    assert "fp16-noscale" in msg


def test_unknown_model_lists_valid_ones(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, BASE.replace("[gpt-tiny]", "[gpt-tinny]")))
    assert "models[0]: unknown model size 'gpt-tinny'; did you mean 'gpt-tiny'?" in msg


def test_recipe_options_are_validated(tmp_path: Path) -> None:
    text = BASE.replace("[fp32, bf16]", "[{name: fp16, options: {init_scal: 8}}]")
    assert "precisions[0].options.init_scal: unknown key; did you mean 'init_scale'?" in error_of(
        write(tmp_path, text))


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, BASE + "train: [unclosed\n"))
    assert "YAML syntax error at line 7, column 1" in msg


def test_empty_missing_and_directory(tmp_path: Path) -> None:
    assert "is empty" in error_of(write(tmp_path, ""))
    assert "suite file not found" in error_of(tmp_path / "nope.yaml")
    assert "is a directory" in error_of(tmp_path)


def test_device_profile_errors_name_the_device_section(tmp_path: Path) -> None:
    text = BASE + "devices:\n  cuda:\n    train: {steps: -1}\n"
    # the cuda section is checked even when running on a CPU
    assert "devices.cuda.train.steps: input should be greater than 0 (got -1)" in error_of(
        write(tmp_path, text), "cpu")


def test_device_profile_merges_over_base(tmp_path: Path) -> None:
    text = BASE + "devices:\n  cpu:\n    train: {steps: 5}\n    models: [llama-tiny]\n"
    cpu = load_suite(write(tmp_path, text), "cpu")
    cuda = load_suite(write(tmp_path, text), "cuda")
    assert (cpu.profile, cpu.train.steps, cpu.train.batch_size, cpu.models[0].size) == (
        "cpu", 5, 2, "llama-tiny")
    assert (cuda.profile, cuda.train.steps) == ("default", 2)


def test_data_file_must_exist(tmp_path: Path) -> None:
    text = BASE.replace("{source: synthetic}", "{source: text, path: missing.txt}")
    assert "data.path: file not found: missing.txt" in error_of(write(tmp_path, text))


def test_unknown_claim_id(tmp_path: Path) -> None:
    assert "claims[0]: unknown claim id 'speedup'" in error_of(write(tmp_path, BASE + "claims: [speedup]\n"))


def test_bundled_suites_validate_on_both_devices() -> None:
    root = Path(__file__).resolve().parent.parent / "suites"
    for path in sorted(root.glob("*.yaml")):
        if path.name == "microbench.yaml":
            continue  # a micro-benchmark suite, not a training suite
        for kind in ("cpu", "cuda"):
            assert expand(load_suite(path, kind)), f"{path.name} ({kind}) expands to no runs"


def test_extension_sections_are_validated_at_load(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, BASE + "extensions: {convergence: {tolerence: 0.1}}\n"))
    assert "extensions.convergence.tolerence: unknown key; did you mean 'tolerance'?" in msg
    msg = error_of(write(tmp_path, BASE + "extensions: {convergence: {tolerance: -1}}\n"))
    assert "extensions.convergence.tolerance: input should be greater than 0 (got -1)" in msg
    assert "unknown extension 'convergnce'" in error_of(
        write(tmp_path, BASE + "extensions: {convergnce: {}}\n"))


def test_matrix_expands_train_settings_into_runs(tmp_path: Path) -> None:
    text = BASE + "matrix: {batch_size: [2, 4], activation_checkpointing: [false, true]}\n"
    runs = expand(load_suite(write(tmp_path, text), "cpu"))
    assert len(runs) == 2 * 2 * 2  # batch x checkpointing x precision
    ids = {r.run_id for r in runs}
    assert "gpt-tiny__fp32__b4-t16-ckpt__seed0" in ids and "gpt-tiny__bf16__b2-t16__seed0" in ids
    by_id = {r.run_id: r for r in runs}
    assert by_id["gpt-tiny__fp32__b4-t16-ckpt__seed0"].train.activation_checkpointing is True
    assert by_id["gpt-tiny__fp32__b4-t16-ckpt__seed0"].train.batch_size == 4
    lr = expand(load_suite(write(tmp_path, BASE + "matrix: {lr: [0.001, 0.01]}\n"), "cpu"))
    assert {r.run_id for r in lr} >= {"gpt-tiny-lr0.001__fp32__b2-t16__seed0",
                                     "gpt-tiny-lr0.01__fp32__b2-t16__seed0"}


def test_matrix_errors_name_the_setting(tmp_path: Path) -> None:
    assert "matrix.batch: not a train setting; did you mean 'batch_size'?" in error_of(
        write(tmp_path, BASE + "matrix: {batch: [2]}\n"))
    assert "matrix.steps: give a non-empty list" in error_of(
        write(tmp_path, BASE + "matrix: {steps: []}\n"))
    assert "matrix.batch_size: input should be greater than 0 (got 0)" in error_of(
        write(tmp_path, BASE + "matrix: {batch_size: [2, 0]}\n"))
    assert "seq_len: 512 is over the maximum 256" in error_of(
        write(tmp_path, BASE + "matrix: {seq_len: [16, 512]}\n"))
