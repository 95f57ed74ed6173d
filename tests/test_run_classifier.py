"""bert/run_classifier.py end to end on a tiny emotion dataset, and its one-line flag errors."""

import json
import os

import numpy as np
import pytest

import conftest

ENTRY = "bert/run_classifier.py"


@pytest.fixture
def setup(tmp_path):
  data_dir = conftest.write_emotion_dataset(tmp_path / "data", num_train=72, num_dev=16,
                                            num_test=12)
  return {"data_dir": data_dir,
          "vocab": conftest.write_vocab(tmp_path / "vocab.txt"),
          "config": conftest.write_config(tmp_path / "bert_config.json", num_hidden_layers=1),
          "output_dir": str(tmp_path / "output"),
          "export_dir": str(tmp_path / "export")}


def base_args(s):
  return [ENTRY, "--task_name=emotion", "--data_dir=" + s["data_dir"],
          "--vocab_file=" + s["vocab"], "--bert_config_file=" + s["config"],
          "--output_dir=" + s["output_dir"], "--max_seq_length=24"]


def test_train_eval_predict_export(setup):
  proc = conftest.run_entry(base_args(setup) + [
      "--do_train", "--do_eval", "--do_predict", "--do_export",
      "--export_dir=" + setup["export_dir"],
      "--train_batch_size=8", "--num_train_epochs=2", "--learning_rate=1e-3",
      "--warmup_proportion=0", "--eval_batch_size=5", "--predict_batch_size=5",
      "--save_checkpoints_steps=10", "--log_every_n_steps=5"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  assert "Training 18 steps" in out  # ceil(72 * 2 / 8)
  output_dir = setup["output_dir"]

  results = {}
  with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
    for line in f:
      key, _, value = line.strip().partition(" = ")
      results[key] = value
  assert int(results["global_step"]) == 18
  assert int(results["num_examples"]) == 16
  assert 0.0 <= float(results["eval_accuracy"]) <= 1.0
  for key in ("eval_loss", "precision_0", "recall_1", "f1_1", "macro_f1"):
    assert key in results

  with open(os.path.join(setup["data_dir"], "test.csv"), encoding="utf-8") as f:
    test_lines = [line for line in f if line.strip()]
  with open(os.path.join(output_dir, "test_results.tsv"), encoding="utf-8") as f:
    rows = [[float(x) for x in line.split("\t")] for line in f.read().splitlines()]
  assert len(rows) == len(test_lines) == 12
  assert all(len(row) == 2 for row in rows)
  np.testing.assert_allclose(np.sum(rows, axis=1), 1.0, atol=1e-6)

  versions = [d for d in os.listdir(setup["export_dir"])]
  assert len(versions) == 1 and versions[0].isdigit()
  version_dir = os.path.join(setup["export_dir"], versions[0])
  assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
  with open(os.path.join(version_dir, "assets.extra", "bert_export.json"), encoding="utf-8") as f:
    info = json.load(f)
  assert info["labels"] == ["0", "1"] and info["max_seq_length"] == 24
  assert info["task_name"] == "emotion"
  assert os.path.isfile(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))
  assert os.path.basename(
      open(os.path.join(output_dir, "checkpoint")).readline().split('"')[1]) == "model.ckpt-18"


def test_bad_flags_exit_1_with_one_line_error(setup, tmp_path):
  missing_data = str(tmp_path / "no_data")
  os.makedirs(missing_data)
  cases = [
      (base_args(setup) + ["--do_train", "--learning_rate=0"], ["--learning_rate", "> 0"]),
      ([a for a in base_args(setup) if not a.startswith("--data_dir")] +
       ["--data_dir=" + missing_data, "--do_train", "--num_train_steps=3"],
       ["train.csv", "not found"]),
  ]
  # Both at once: each process spends most of its time importing TensorFlow.
  procs = [conftest.start_entry(args) for args, _ in cases]
  for proc, (_, words) in zip(procs, cases):
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    for word in words:
      assert word in errors[0]
  # The refused runs wrote no checkpoint.
  assert not os.path.exists(os.path.join(setup["output_dir"], "checkpoint"))


def test_both_entry_points_import_in_one_process():
  result = conftest.run_entry(
      ["-c", "import bert.run_classifier, bert.run_classifier_distill\n"
             "from absl import flags\n"
             "print(flags.FLAGS['alpha'].default, flags.FLAGS['task_name'].default)"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ["0.5", "None"]


@pytest.mark.parametrize("entry,bad_flag,words", [
    (ENTRY, "--learning_rate=0", ["--learning_rate", "> 0"]),
    ("bert/run_classifier_distill.py", "--alpha=2", ["--teacher_model", "required"]),
])
def test_flag_errors_come_before_tensorflow_is_imported(setup, tmp_path, entry, bad_flag, words):
  # A `tensorflow` that cannot be imported: the flag error must be reported without it.
  fake = tmp_path / "fake_site" / "tensorflow"
  fake.mkdir(parents=True)
  (fake / "__init__.py").write_text("raise ImportError('tensorflow imported before flags')\n")
  result = conftest.run_entry(
      [entry] + base_args(setup)[1:] + ["--do_train", bad_flag],
      env={"PYTHONPATH": os.pathsep.join([str(fake.parent), conftest.REPO_ROOT])})
  assert result.returncode == 1, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and all(word in errors[0] for word in words), result.stderr[-2000:]
  assert "tensorflow imported before flags" not in result.stderr
