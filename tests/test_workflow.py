# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""bundle.workflow: the configs' helpers; here the check of ``python -m monai.bundle run`` options."""

import json

import pytest

from bundle.workflow import bad_flag_values, bad_number_values, check_overrides, unknown_overrides

from .conftest import REPO

MAIN = "/venv/lib/python3.11/site-packages/monai/bundle/__main__.py"  # sys.argv[0] of python -m monai.bundle
INFER = str(REPO / "configs" / "inference.json")
TRAIN, EVAL = str(REPO / "configs" / "train.json"), str(REPO / "configs" / "evaluate.json")


def test_known_options_pass_in_every_spelling_fire_accepts():
    argv = [MAIN, "run", "inference", "--config_file", INFER, "--moving", "m.png", "--fixed=f.png",
            "--refine-steps", "2", "--overwrite", "--debug", "--meta_file", "configs/metadata.json",
            "--logging_file", "configs/logging.conf"]
    assert unknown_overrides(argv) == ([], [INFER])
    check_overrides("cxreg inference", argv)  # returns, no exit


def test_a_misspelt_option_is_named_with_the_closest_key():
    argv = [MAIN, "run", "inference", "--config_file", INFER, "--moving", "m.png", "--refine", "20"]
    assert unknown_overrides(argv) == ([("refine", "refine_steps")], [INFER])
    with pytest.raises(SystemExit) as e:
        check_overrides("cxreg inference", argv)
    assert str(e.value) == (f"cxreg inference: error: --refine: not an option of {INFER} "
                            "(did you mean --refine_steps?)")


def test_merged_configs_nested_keys_and_several_unknown_options():
    files = f"['{TRAIN}','{EVAL}']"
    ok = [MAIN, "run", "--config_file", files, "--max_epochs", "3", "--network_def#channels", "8",
          "--eval_dir", "/tmp/e"]  # eval_dir is evaluate.json's, max_epochs train.json's
    assert unknown_overrides(ok) == ([], [TRAIN, EVAL])
    bad = [MAIN, "run", "training", "--config_file", files, "--max_epoch=3", "--colour", "red"]
    found, _ = unknown_overrides(bad)
    assert found == [("max_epoch", "max_epochs"), ("colour", None)]
    with pytest.raises(SystemExit) as e:
        check_overrides("cxreg training", bad)
    assert str(e.value) == (f"cxreg training: error: --max_epoch, --colour: not options of {TRAIN}, {EVAL} "
                            "(did you mean --max_epochs for --max_epoch?)")


def test_options_of_an_args_file_are_checked_too(tmp_path):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"config_file": INFER, "moving": "m.png", "refine_stpes": 2}))
    assert unknown_overrides([MAIN, "run", "inference", "--args_file", str(args)]) == (
        [("refine_stpes", "refine_steps")], [INFER])


def test_no_check_outside_a_monai_bundle_command_line_or_without_readable_configs(tmp_path):
    assert unknown_overrides(["/usr/bin/pytest", "--refine", "2"]) == ([], [])
    assert unknown_overrides([MAIN, "run", "--config_file", str(tmp_path / "none.json"), "--x", "1"]) == ([], [])
    check_overrides("cxreg", ["/usr/bin/pytest", "--anything"])


@pytest.mark.parametrize("cfg", ["inference.json", "train.json", "evaluate.json", "multi_gpu_train.json",
                                 "segmentation/inference.json", "segmentation/train.json",
                                 "segmentation/evaluate.json", "segmentation/multi_gpu_train.json",
                                 "autoencoder/inference.json", "autoencoder/train.json",
                                 "autoencoder/evaluate.json", "autoencoder/multi_gpu_train.json"])
def test_every_config_checks_its_options_first(cfg):
    init = json.loads((REPO / "configs" / cfg).read_text())["initialize"]
    assert init[0].startswith("$bundle.workflow.check_overrides('cxreg ")


def test_monai_s_own_override_forms_pass(tmp_path):
    """What MONAI and Fire accept besides config keys: ``::`` paths, tracking settings with ``--tracking``,
    ``--properties_path``, Fire's own flags after a bare ``--``."""
    ok = [MAIN, "run", "training", "--config_file", TRAIN, "--network_def::channels", "8", "--tracking", "mlflow",
          "--experiment_name", "e", "--run_name", "r", "--properties_path", "p.json", "--", "--trace", "--verbose"]
    assert unknown_overrides(ok) == ([], [TRAIN])
    # without --tracking, a tracking setting is not a key of this config
    assert unknown_overrides([MAIN, "run", "--config_file", TRAIN, "--experiment_name", "e"])[0] == [
        ("experiment_name", None)]


def test_yaml_args_files_comma_separated_configs_and_one_dash_options_are_checked(tmp_path):
    args = tmp_path / "args.yaml"
    args.write_text(f"config_file: {INFER}\nrefine: 3\n")
    assert unknown_overrides([MAIN, "run", "inference", "--args_file", str(args)])[0] == [("refine", "refine_steps")]
    both = f"{TRAIN},{EVAL}"
    assert unknown_overrides([MAIN, "run", "--config_file", both, "--eval_dir", "e", "--max_epochs", "2"]) == (
        [], [TRAIN, EVAL])
    assert unknown_overrides([MAIN, "run", "inference", "--config_file", INFER, "-refine", "20", "--moving",
                              "-1"])[0] == [("refine", "refine_steps")]  # "-1" is a value, not an option


def test_a_true_false_option_with_another_value_stops_with_one_line():
    """``--amp maybe`` used to raise a ValueError traceback from inside a config expression."""
    argv = [MAIN, "run", "training", "--config_file", TRAIN, "--amp", "maybe", "--resume", "off", "--affine", "1"]
    assert bad_flag_values(argv) == [("amp", "maybe")]
    with pytest.raises(SystemExit) as e:
        check_overrides("cxreg training", argv)
    assert str(e.value) == "cxreg training: error: --amp maybe: must be true or false (or on/off, yes/no, 1/0)"
    # a setting that --init fills in with a bool default is a flag too; a bare --flag is true
    assert bad_flag_values([MAIN, "run", "--config_file", TRAIN, "--integrate", "yes please"]) == [
        ("integrate", "yes please")]
    ok = [MAIN, "run", "--config_file", TRAIN, "--amp", "--debug", "False", "--fix_folds", "on", "--max_epochs", "x"]
    assert bad_flag_values(ok) == []  # --max_epochs is not a flag: not this check's business
    # MONAI expressions, references and macros resolve later (flag() checks their value); Fire's float 1.0 is true
    assert bad_flag_values([MAIN, "run", "--config_file", TRAIN, "--amp", "$torch.cuda.is_available()", "--resume",
                            "@debug", "--augment", "%configs/train.json#resume", "--debug", "1.0"]) == []
    assert bad_flag_values([MAIN, "run", "--config_file", TRAIN, "--debug", "2.0"]) == [("debug", "2.0")]
    check_overrides("cxreg training", ok[:-2])
    assert bad_flag_values(["/usr/bin/pytest", "--amp", "maybe"]) == []


def test_a_number_option_with_another_value_stops_with_one_line():
    """``--max_epochs ten`` used to get as far as ignite (a TypeError traceback after the data were read)."""
    argv = [MAIN, "run", "training", "--config_file", TRAIN, "--max_epochs", "ten", "--learning_rate", "1e-4",
            "--batch_size", "8.5", "--lambda_df", "x", "--seed", "3", "--int_steps", "5", "--val_fraction", "0.2"]
    assert bad_number_values(argv) == [("max_epochs", "ten", "a whole number >= 1"),
                                       ("batch_size", "8.5", "a whole number >= 1"),
                                       ("lambda_df", "x", "a finite number >= 0")]
    with pytest.raises(SystemExit) as e:
        check_overrides("cxreg training", argv)
    assert str(e.value) == "cxreg training: error: --max_epochs ten: must be a whole number >= 1"
    # out of range (ignite refuses 0 epochs; val_fraction 0 saves no model), not finite, or not a number as Fire
    # reads it ("5." is a float, "07" a string); a setting that --init fills in with a number default is checked too
    out = [MAIN, "run", "--config_file", TRAIN, "--int_steps", "0", "--batch_size", "0", "--learning_rate", "0",
           "--seed", "-1", "--lambda_df", "-0.5", "--max_epochs", "0", "--val_fraction", "1", "--val_pairs", "0",
           "--lambda_ncc", "nan", "--lambda_ssim", "inf", "--num_scales", "5.", "--val_interval", "07",
           "--attention_margin", "-2", "--num_workers", "0", "--lambda_ce", "0", "--lambda_ic", "2"]
    assert bad_number_values(out) == [
        ("int_steps", "0", "a whole number >= 1"), ("batch_size", "0", "a whole number >= 1"),
        ("learning_rate", "0", "a finite number > 0"), ("seed", "-1", "a whole number >= 0"),
        ("lambda_df", "-0.5", "a finite number >= 0"), ("max_epochs", "0", "a whole number >= 1"),
        ("val_fraction", "1", "a finite number > 0 and < 1"), ("val_pairs", "0", "a whole number >= 1"),
        ("lambda_ncc", "nan", "a finite number >= 0"), ("lambda_ssim", "inf", "a finite number >= 0"),
        ("num_scales", "5.", "a whole number >= 1 and <= 4"), ("val_interval", "07", "a whole number >= 1"),
        ("attention_margin", "-2", "a finite number >= 0")]
    with pytest.raises(SystemExit) as e:
        check_overrides("cxreg training", [MAIN, "run", "--config_file", TRAIN, "--max_epochs"])
    assert str(e.value) == "cxreg training: error: --max_epochs (no value): must be a whole number >= 1"
    # expressions, references and macros resolve later; options that are not numbers are not this check's
    # business, nor are the refinement options, which keep their own messages (tests/test_export.py)
    assert bad_number_values([MAIN, "run", "--config_file", TRAIN, "--max_epochs", "$2*3", "--batch_size", "@seed",
                              "--dataset", "MONT", "--amp", "maybe", "--learning_rate", "3", "--lambda_ic", "0.5",
                              "--val_pairs", "1_0"]) == []
    assert bad_number_values([MAIN, "run", "--config_file", INFER, "--refine_steps", "two",
                              "--refine_distance_weight", "-1"]) == []
    assert bad_number_values([MAIN, "run", "--config_file", TRAIN, "--num_scales", "5"]) == [
        ("num_scales", "5", "a whole number >= 1 and <= 4")]  # MultiScaleRegNet fuses 1 to 4 scales


def test_numbers_of_an_args_file_are_taken_as_the_file_holds_them(tmp_path):
    """Fire reads the command line's words (``1e-4`` is a float there), but an ``--args_file``'s values reach MONAI
    as loaded: YAML 1.1 reads ``1e-4`` as text, which the optimiser would be handed."""
    args = tmp_path / "args.yaml"
    args.write_text("learning_rate: 1e-4\nmax_epochs: 5\nlambda_df: 2.0\n")
    argv = [MAIN, "run", "training", "--config_file", TRAIN, "--args_file", str(args)]
    assert bad_number_values(argv) == [
        ("learning_rate", "1e-4", "a finite number > 0 (the --args_file gives it as text; write it as a number, "
                                  "e.g. 1.0e-4 in YAML)")]
    args.write_text("learning_rate: 1.0e-4\nmax_epochs: 5\n")
    assert bad_number_values(argv) == []
    assert bad_number_values(argv + ["--learning_rate", "1e-4"]) == []  # the command line wins, read by Fire
    assert bad_number_values(["/usr/bin/pytest", "--max_epochs", "ten"]) == []
