"""RunConfig: the flags' names and defaults, checks as one-line errors, derived values, frozen."""

import dataclasses
import subprocess
import sys

import pytest
from absl import flags as absl_flags

import conftest
from bert import classifier_flags, serving_cpu
from bert.errors import UsageError
from bert.run_config import DISTILL_NAMES, SETTING_NAMES, DistillSettings, RunConfig


def test_settings_have_the_flags_names_and_defaults():
  values = absl_flags.FlagValues()
  classifier_flags.define_distill_flags(values)
  fields = {f.name: f.default for f in dataclasses.fields(RunConfig)}
  fields.update({f.name: f.default for f in dataclasses.fields(DistillSettings)})
  for name in SETTING_NAMES + DISTILL_NAMES:
    assert name in values, name
    if name != "temperature":  # None: 1.0 for run_classifier, 2.0 for distillation
      assert fields[name] == values[name].default, name
  # Every flag of the entry points is a setting, but the ones no run reads.
  assert set(values) - set(SETTING_NAMES + DISTILL_NAMES) >= {"verbose", "iterations_per_loop"}
  assert not {name for name in set(values) - set(SETTING_NAMES + DISTILL_NAMES)
              if name in classifier_flags.__dict__ or name.startswith(("do_", "augment_"))}


@pytest.fixture
def files(tmp_path):
  return dict(task_name="emotion", data_dir=conftest.write_emotion_dataset(tmp_path / "data"),
              vocab_file=conftest.write_vocab(tmp_path / "vocab.txt"),
              bert_config_file=conftest.write_config(tmp_path / "bert_config.json"),
              output_dir=str(tmp_path / "out"), max_seq_length=24, do_train=True)


def test_from_flags_equals_create_and_derives_before_any_graph(files):
  config = RunConfig.from_flags(conftest.classifier_flags(**files, precision="fp32",
                                                          train_batch_size=10))
  assert config == RunConfig.create(**files, precision="fp32", train_batch_size=10)
  assert config.distill is None and config.temperature == 1.0
  assert config.label_list == ("0", "1") and config.work_dir == files["output_dir"]
  assert (config.compute_precision, config.precision_reason) == ("fp32", "--precision=fp32")
  assert config.train_steps is None and config.layer_map is None
  final = config.for_train_examples(64)
  assert (final.num_train_examples, final.train_steps, final.warmup_steps) == (64, 20, 2)
  assert config.train_steps is None  # a new config; this one is unchanged
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.train_steps = 5
  fixed = RunConfig.create(**files, num_train_steps=7, warmup_proportion=0.5)
  assert (fixed.train_steps, fixed.warmup_steps) == (7, 3)
  assert fixed.for_train_examples(1000).train_steps == 7


def test_distillation_settings_make_a_distillation_config(files):
  config = RunConfig.create(**files, teacher_model="/some/export", alpha=0.25)
  assert config.distill == DistillSettings(teacher_model="/some/export", alpha=0.25)
  assert config.temperature == 2.0 and config.train_temperature == 1.0
  assert config.distill.teachers == [("/some/export", 1.0)]


@pytest.mark.parametrize("settings, cpu", [
    (dict(), None),  # this machine's L2 cache and cores (serving_cpu.ServingCpu.this_machine)
    (dict(serving_l2_kib=1024, serving_cores=4), {"l2_bytes": 2 ** 20, "cores": 4}),
    (dict(export_row_blocks=False, serving_l2_kib=1024), False),
])
def test_the_export_is_built_for_the_serving_cpu(files, settings, cpu):
  got = RunConfig.create(**files, **settings).export_row_blocks_for
  if cpu is False:
    assert got is False
  else:
    here = serving_cpu.ServingCpu.this_machine()
    assert got.to_json() == (cpu or here.to_json())


@pytest.mark.parametrize("overrides, message", [
    (dict(learning_rate=float("nan")), "--learning_rate: must be a finite number, got nan"),
    (dict(train_batch_size=0), "--train_batch_size: must be > 0, got 0"),
    (dict(serving_l2_kib=-1), "--serving_l2_kib: must be >= 0 (0: this machine's L2 cache)"),
    (dict(serving_cores=-2), "--serving_cores: must be >= 0 (0: this machine's cores), got -2"),
    (dict(init_layer_map="0,1"), "--init_layer_map: needs --init_checkpoint"),
    (dict(teacher_model=None), "--teacher_model: required"),
    (dict(teacher_model="t", alpha=2.0), "--alpha: must be in [0, 1], got 2.0"),
])
def test_bad_settings_are_one_line_errors_naming_the_flag(files, overrides, message):
  with pytest.raises(UsageError) as error:
    RunConfig.create(**dict(files, **overrides))
  assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_importing_and_checking_needs_no_tensorflow():
  code = ("import sys; from bert import run_config, errors\n"
          "try:\n  run_config.RunConfig.create(task_name='emotion')\n"
          "except errors.UsageError as e:\n  print(e)\n"
          "print('tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code], cwd=conftest.REPO_ROOT,
                          stdout=subprocess.PIPE, universal_newlines=True, check=True)
  assert result.stdout.splitlines() == ["nothing to do: give at least one of --do_train, "
                                        "--do_eval, --do_predict, --do_export", "False"]
