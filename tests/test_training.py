"""Trainer: overfitting a tiny model, checkpoints, resume, eval results, predict order, errors."""

import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bert import classifier, classifier_data
from bert.errors import UsageError
from bert.training import Trainer

import conftest

conftest.use_exact_float32()


def read_results(path):
  results = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      key, _, value = line.strip().partition(" = ")
      results[key] = value
  return results


def test_tiny_model_overfits_32_examples(tiny_model):
  assert os.path.basename(tiny_model.checkpoint) == "model.ckpt-%d" % tiny_model.train_steps
  metrics = tiny_model.trainer.evaluate(tiny_model.eval_input_fn, batch_size=8)
  assert metrics["eval_accuracy"] >= 0.95
  assert metrics["num_examples"] == 32
  assert metrics["global_step"] == tiny_model.train_steps
  assert metrics["eval_loss"] < 0.3

  results = read_results(os.path.join(tiny_model.output_dir, "eval_results.txt"))
  for key in ("eval_accuracy", "eval_loss", "global_step", "macro_f1"):
    assert key in results, key
  for label in tiny_model.labels:
    for metric in ("precision", "recall", "f1"):
      assert 0.9 <= float(results["%s_%s" % (metric, label)]) <= 1.0
  assert float(results["eval_accuracy"]) == pytest.approx(metrics["eval_accuracy"])
  assert int(results["global_step"]) == tiny_model.train_steps


def test_classification_metrics_per_class():
  probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
  metrics = classifier.classification_metrics(np.array([0, 1, 1, 1]), probabilities,
                                              np.array([0.1, 0.2, 0.9, 0.3]), ["neg", "pos"])
  assert metrics["eval_accuracy"] == pytest.approx(0.75)
  assert metrics["eval_loss"] == pytest.approx(0.375)
  assert metrics["precision_neg"] == pytest.approx(0.5)
  assert metrics["recall_neg"] == pytest.approx(1.0)
  assert metrics["precision_pos"] == pytest.approx(1.0)
  assert metrics["recall_pos"] == pytest.approx(2 / 3)
  assert metrics["f1_pos"] == pytest.approx(0.8)
  assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_predict_yields_rows_in_input_order(tiny_model, tmp_path):
  rows = list(tiny_model.trainer.predict(tiny_model.eval_input_fn, batch_size=5))
  assert len(rows) == 32
  probabilities = np.stack([r["probabilities"] for r in rows])
  logits = np.stack([r["logits"] for r in rows])
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
  labels = [int(label) for _, label in tiny_model.lines]
  assert np.mean(np.argmax(probabilities, axis=1) == labels) >= 0.95

  # The same examples written in reverse order predict the reversed rows.
  reversed_file = str(tmp_path / "reversed.tf_record")
  conftest.write_feature_records(reversed_file, tiny_model.examples[::-1], tiny_model.labels,
                                 tiny_model.vocab_file, tiny_model.max_seq_length)
  input_fn = classifier_data.input_fn_builder(reversed_file, False, tiny_model.max_seq_length)
  reversed_rows = list(tiny_model.trainer.predict(input_fn, batch_size=7))
  reversed_logits = np.stack([r["logits"] for r in reversed_rows])
  np.testing.assert_allclose(reversed_logits[::-1], logits, atol=1e-5, rtol=0)


def _events(output_dir):
  tags = set()
  for path in glob.glob(os.path.join(output_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  return tags


def test_stopped_run_resumes_from_its_checkpoint(tiny_model, tmp_path, capsys):
  output_dir = str(tmp_path / "resume")
  # One layer: this test builds three training graphs.
  config = conftest.tiny_config(num_hidden_layers=1)
  model_fn = classifier.model_fn_builder(config, tiny_model.labels, learning_rate=1e-3,
                                        num_train_steps=9)
  signature = {"bert_config": config.architecture(), "labels": tiny_model.labels}

  def new_trainer(**kwargs):
    return tiny_model.new_trainer(output_dir, model_fn=model_fn, model_signature=signature,
                                  **kwargs)

  first = new_trainer(save_checkpoints_steps=2, log_every_n_steps=2)
  path = first.train(tiny_model.train_input_fn, max_steps=5, batch_size=8)
  out = capsys.readouterr().out
  assert os.path.basename(path) == "model.ckpt-5"
  assert "Resuming from" not in out
  state = tf.train.get_checkpoint_state(output_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-2", "model.ckpt-4", "model.ckpt-5"]
  assert {"loss", "learning_rate", "accuracy", "examples_per_sec"} <= _events(output_dir)

  # What a save killed mid-write leaves behind (TF's temporary names) goes on the next run.
  partial = [os.path.join(output_dir, "model.ckpt-6.data-00000-of-00001.tempstate42"),
             os.path.join(output_dir, "model.ckpt-6_temp", "part-00000-of-00001.index")]
  for leftover in partial:
    os.makedirs(os.path.dirname(leftover), exist_ok=True)
    with open(leftover, "wb") as f:
      f.write(b"partial")

  second = new_trainer(save_checkpoints_steps=2, keep_checkpoint_max=3)
  path = second.train(tiny_model.train_input_fn, max_steps=9, batch_size=8)
  out = capsys.readouterr().out
  assert not glob.glob(os.path.join(output_dir, "*temp*")), os.listdir(output_dir)
  assert out.count("left by an interrupted checkpoint save") == 2
  assert "Resuming from %s" % os.path.join(output_dir, "model.ckpt-5") in out
  assert "Trained to step 9" in out
  assert os.path.basename(path) == "model.ckpt-9"
  assert os.path.basename(second.latest_checkpoint()) == "model.ckpt-9"
  state = tf.train.get_checkpoint_state(output_dir)
  # Saved at 6 and 8 (every 2 steps) and at the end; the oldest beyond keep_checkpoint_max go.
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-6", "model.ckpt-8", "model.ckpt-9"]
  assert not glob.glob(os.path.join(output_dir, "model.ckpt-2.*"))
  assert tf.train.load_variable(path, "global_step") == 9
  # Optimizer slots are checkpointed too, so Adam resumes where it stopped.
  names = {name for name, _ in tf.train.list_variables(path)}
  assert "output_weights/adam_m" in names and "output_weights/adam_v" in names

  # Asked for a step already reached, it trains nothing and keeps the checkpoint.
  again = new_trainer()
  assert again.train(tiny_model.train_input_fn, max_steps=9, batch_size=8).endswith("ckpt-9")
  assert "nothing to train" in capsys.readouterr().out
  assert os.path.basename(again.latest_checkpoint()) == "model.ckpt-9"


def test_evaluate_or_predict_without_checkpoint_raises_usage_error(tiny_model, tmp_path):
  trainer = tiny_model.new_trainer(str(tmp_path / "empty"))
  with pytest.raises(UsageError, match="no checkpoint"):
    trainer.evaluate(tiny_model.eval_input_fn, batch_size=8)
  with pytest.raises(UsageError, match="no checkpoint"):
    list(trainer.predict(tiny_model.eval_input_fn, batch_size=8))


def test_output_dir_of_a_different_model_is_refused(tiny_model, tmp_path):
  output_dir = str(tmp_path / "model")
  shutil.copytree(tiny_model.output_dir, output_dir)
  checkpoint = "model.ckpt-%d" % tiny_model.train_steps
  bigger = conftest.tiny_config(hidden_size=48, num_attention_heads=3)
  model_fn = classifier.model_fn_builder(bigger, tiny_model.labels, learning_rate=1e-3)
  signature = {"bert_config": bigger.architecture(), "labels": tiny_model.labels}
  trainer = Trainer(model_fn, output_dir, model_signature=signature)
  with pytest.raises(UsageError) as info:
    trainer.train(tiny_model.train_input_fn, max_steps=3, batch_size=8)
  assert output_dir in str(info.value) and "hidden_size" in str(info.value)
  with pytest.raises(UsageError, match="hidden_size"):
    trainer.evaluate(tiny_model.eval_input_fn, batch_size=8)
  # Without a recorded signature the checkpoint's shapes still refuse it, naming the variable.
  unsigned = Trainer(model_fn, output_dir)
  with pytest.raises(UsageError, match=r"variable bert/\S+ has shape"):
    unsigned.train(tiny_model.train_input_fn, max_steps=3, batch_size=8)
  # Nothing was written by the refused runs.
  assert os.path.basename(tf.train.latest_checkpoint(output_dir)) == checkpoint
  def files(directory):
    return sorted(name for name in os.listdir(directory) if not name.startswith("events."))
  assert files(output_dir) == files(tiny_model.output_dir)



def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tiny_model, tmp_path):
  """A trivial model_fn (one weight) whose loss turns NaN at the third step."""
  from bert.errors import TrainingError
  from bert.training import ModelSpec
  tf1 = tf.compat.v1

  def model_fn(features, labels, mode, params):
    del labels, params
    w = tf1.get_variable("w", [], initializer=tf1.ones_initializer())
    global_step = tf1.train.get_global_step()
    x = tf.reduce_mean(tf.cast(features["input_ids"], tf.float32))
    loss = tf.where(global_step >= 2, np.nan, w * x)
    with tf.control_dependencies([loss]):  # the step reads the loss before it moves on
      train_op = tf.group(w.assign_sub(0.01), global_step.assign_add(1))
    return ModelSpec(mode, loss=loss, train_op=train_op, summaries={"loss": loss})

  output_dir = str(tmp_path / "nan")
  trainer = Trainer(model_fn, output_dir, save_checkpoints_steps=2)
  with pytest.raises(TrainingError) as info:
    trainer.train(tiny_model.train_input_fn, max_steps=10, batch_size=8)
  message = str(info.value)
  assert "nan" in message and "step 3" in message and "model.ckpt-2" in message
  assert os.path.basename(trainer.latest_checkpoint()) == "model.ckpt-2"
