"""Intermediate-layer distillation (issue 14): the teacher export's inner tensors, the match
losses against numpy, the presets and their errors, schedules, several teachers, a TinyBERT run
whose projections stay out of the export, and a two-stage run.

Reuses test_distillation's Kit (a tiny trained 2-layer teacher export and an untrained 4-layer
one, both of width 32 with 2 heads).
"""

import json
import math
import os
import re
import shutil
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from bert import distill_config, distill_matches, distillation, export, modeling
from bert.errors import UsageError
from bert.training import ModeKeys
from test_distillation import (Kit, captured, checkpoint_variables, export_graph, one_line,
                               tiny_config, training_graph, write_json)

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
  kit = Kit(str(tmp_path_factory.mktemp("matches")))
  # A student narrower than the teacher (16 vs 32, the same 2 heads): hidden matches need a
  # projection; one with 4 heads cannot match attention.
  kit.narrow_config = write_json(os.path.join(kit.root, "narrow.json"), tiny_config(1, 16))
  kit.narrow2_config = write_json(os.path.join(kit.root, "narrow2.json"), tiny_config(2, 16))
  kit.heads_config = write_json(os.path.join(kit.root, "heads.json"),
                                dict(tiny_config(1, 32), num_attention_heads=4))
  return kit


# -- the losses against numpy ----------------------------------------------------------------

def np_log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_hidden(student, teacher, mask, loss):
  per_token = (np.mean((student - teacher) ** 2, -1) if loss == "mse" else
               1 - np.sum(np_normalize(student) * np_normalize(teacher), -1))
  return np.array([per_token[b][mask[b] > 0].mean() for b in range(len(mask))])


def np_attention(student, teacher, mask, loss):
  out = []
  for b in range(len(mask)):
    n = int(mask[b].sum())  # real tokens come first
    s, t = student[b][:, :n, :n], teacher[b][:, :n, :n]
    if loss == "mse":
      out.append(np.mean((s - t) ** 2))
    else:  # softmax over the real keys only, then KL per real row
      log_t, log_s = np_log_softmax(t), np_log_softmax(s)
      out.append(np.mean(np.sum(np.exp(log_t) * (log_t - log_s), -1)))
  return np.array(out)


def test_match_losses_against_numpy_with_masks():
  rng = np.random.RandomState(0)
  batch, seq, width, heads = 4, 7, 6, 3
  lengths = [7, 4, 1, 5]
  mask = np.array([[1.0] * n + [0.0] * (seq - n) for n in lengths], np.float32)
  student = rng.randn(batch, seq, width).astype(np.float32)
  teacher = rng.randn(batch, seq, width).astype(np.float32)
  s_scores = (rng.randn(batch, heads, seq, seq) * 2).astype(np.float32)
  t_scores = (rng.randn(batch, heads, seq, seq) * 2).astype(np.float32)
  # As in the model: padded keys carry MASK_ADDER in the scores.
  key_bias = ((1 - mask) * modeling.MASK_ADDER)[:, None, None, :]
  s_scores, t_scores = s_scores + key_bias, t_scores + key_bias
  # Garbage at padded positions must not count: rerun with it replaced.
  noisy = [a.copy() for a in (student, teacher, s_scores, t_scores)]
  for b, n in enumerate(lengths):
    for a in noisy[:2]:
      a[b, n:] = 1e3
    for a in noisy[2:]:
      a[b, :, n:, :] = 1e3  # padded query rows: anything
      a[b, :, :n, n:] += rng.randn(heads, n, seq - n) * 50  # padded keys: still masked
  with tf.Graph().as_default():
    ph = {name: tf1.placeholder(tf.float32) for name in ("s", "t", "ss", "ts", "m")}
    built = {
        "hidden_mse": distill_matches.hidden_mse(ph["s"], ph["t"], ph["m"]),
        "hidden_cosine": distill_matches.hidden_cosine(ph["s"], ph["t"], ph["m"]),
        "pkd": distill_matches.pkd(ph["s"][:, 0], ph["t"][:, 0]),
        "vector_mse": distill_matches.vector_mse(ph["s"][:, 0], ph["t"][:, 0]),
        "vector_cosine": distill_matches.vector_cosine(ph["s"][:, 0], ph["t"][:, 0]),
        "attention_mse": distill_matches.attention_mse(ph["ss"], ph["ts"], ph["m"]),
        "attention_kl": distill_matches.attention_kl(ph["ss"], ph["ts"], ph["m"]),
    }
    grads = tf.gradients(built["attention_kl"], ph["ss"])[0]
    with tf1.Session() as session:
      results = []
      for arrays in ((student, teacher, s_scores, t_scores), tuple(noisy)):
        feed = dict(zip([ph[k] for k in ("s", "t", "ss", "ts", "m")], arrays + (mask,)))
        results.append(session.run((built, grads), feed))
  (values, grad), (noisy_values, _) = results
  s0, t0 = student[:, 0], teacher[:, 0]
  expected = {
      "hidden_mse": np_hidden(student, teacher, mask, "mse"),
      "hidden_cosine": np_hidden(student, teacher, mask, "cosine"),
      "pkd": np.sum((np_normalize(s0) - np_normalize(t0)) ** 2, -1),
      "vector_mse": np.mean((s0 - t0) ** 2, -1),
      "vector_cosine": 1 - np.sum(np_normalize(s0) * np_normalize(t0), -1),
      "attention_mse": np_attention(s_scores, t_scores, mask, "mse"),
      "attention_kl": np_attention(s_scores, t_scores, mask, "kl"),
  }
  for name, reference in expected.items():
    assert values[name].shape == (batch,), name
    np.testing.assert_allclose(values[name], reference, rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(noisy_values[name], reference, rtol=1e-4, atol=1e-5,
                               err_msg=name + " (padding changed)")
  # One real token: one key, nothing to disagree on.
  assert np.all(values["attention_kl"][[0, 1, 3]] > 0) and values["attention_kl"][2] == 0
  assert np.all(np.isfinite(grad))
  assert np.abs(grad[3, :, 5:, :]).max() == 0  # padded query rows get no gradient


def test_identical_tensors_give_zero_loss():
  rng = np.random.RandomState(1)
  x = rng.randn(2, 5, 4).astype(np.float32)
  scores = rng.randn(2, 2, 5, 5).astype(np.float32)
  mask = np.ones([2, 5], np.float32)
  with tf.Graph().as_default(), tf1.Session() as session:
    values = session.run([distill_matches.hidden_mse(x, x, mask),
                          distill_matches.hidden_cosine(x, x, mask),
                          distill_matches.attention_mse(scores, scores, mask),
                          distill_matches.attention_kl(scores, scores, mask)])
  for value in values:
    np.testing.assert_allclose(value, 0.0, atol=1e-5)


# -- schedules -------------------------------------------------------------------------------

def test_schedule_values_at_given_steps():
  linear = distill_config.parse_schedule({"schedule": "linear", "start": 1, "end": 0}, "w")
  cosine = distill_config.parse_schedule({"schedule": "cosine", "start": 2.0, "end": 0.5,
                                          "from_step": 10, "to_step": 30}, "w")
  constant = distill_config.parse_schedule(0.25, "w")
  total = 100
  expected = {
      "linear": {0: 1.0, 25: 0.75, 50: 0.5, 100: 0.0, 150: 0.0},
      "cosine": {0: 2.0, 10: 2.0, 20: 1.25, 30: 0.5, 99: 0.5,
                 15: 0.5 + 1.5 * 0.5 * (1 + math.cos(math.pi * 0.25))},
      "constant": {0: 0.25, 100: 0.25},
  }
  specs = {"linear": linear, "cosine": cosine, "constant": constant}
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    tensors = {name: distill_matches.schedule_tensor(spec, step, total)
               for name, spec in specs.items()}
    with tf1.Session() as session:
      for name, values in expected.items():
        for at, value in values.items():
          assert distill_config.schedule_value(specs[name], at, total) == pytest.approx(value)
          assert session.run(tensors[name], {step: at}) == pytest.approx(value, abs=1e-6)
  for bad, words in (({"schedule": "exp", "start": 1}, "not one of"),
                     ({"start": 1, "stop": 0}, "unknown schedule key 'stop'"),
                     ({"schedule": "linear", "end": 0}, "needs \"start\""),
                     ("1", "expected a number"),
                     ({"schedule": "linear", "start": 1, "end": 0, "to_step": -3},
                      "non-negative integer")):
    with pytest.raises(UsageError) as error:
      distill_config.parse_schedule(bad, "weight")
    assert words in one_line(error.value)


# -- several teachers ------------------------------------------------------------------------

def test_ensemble_average_against_numpy():
  rng = np.random.RandomState(2)
  logits = [(rng.randn(5, 3) * 3).astype(np.float32) for _ in range(3)]
  weights = [1.0, 0.5, 2.5]
  w = np.array(weights) / sum(weights)
  with tf.Graph().as_default(), tf1.Session() as session:
    for temperature in (1.0, 2.0, 4.0):
      probs_logits = session.run(distill_matches.ensemble_logits(
          [tf.constant(z) for z in logits], weights, temperature))
      mean_logits = session.run(distill_matches.ensemble_logits(
          [tf.constant(z) for z in logits], weights, temperature, "logits"))
      expected = sum(wk * np.exp(np_log_softmax(z / temperature)) for wk, z in zip(w, logits))
      # The soft target kd_loss derives from the result is the weighted average of the
      # teachers' softened probabilities.
      np.testing.assert_allclose(np.exp(np_log_softmax(probs_logits / temperature)), expected,
                                 rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(mean_logits, sum(wk * z for wk, z in zip(w, logits)), rtol=1e-5)
  assert distill_config.parse_teacher_models("a,b:0.5, c:2") == [("a", 1.0), ("b", 0.5),
                                                                  ("c", 2.0)]
  for bad, words in (("a,,b", "empty entry"), ("a:0", "positive"), ("a:-1", "positive")):
    with pytest.raises(UsageError) as error:
      distill_config.parse_teacher_models(bad)
    assert words in one_line(error.value)


def test_two_teachers_in_the_graph_average_their_probabilities(kit):
  run = kit.distill("two", do_train=True, alpha=1.0, temperature=3.0,
                    teacher_model="%s,%s:3" % (kit.teacher_export, kit.weak_export))
  assert [t.weight for t in run.teachers] == [1.0, 3.0]
  with tf.Graph().as_default() as graph, captured():
    ids = tf.constant([[2, 6, 7, 8, 3], [2, 9, 10, 3, 0]], tf.int32)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], tf.int32)
    features = {"input_ids": ids, "input_mask": mask, "segment_ids": tf.zeros_like(ids),
                "label_ids": tf.constant([0, 1])}
    student_logits = tf.constant([[0.3, -0.2], [1.0, 0.5]])
    parts = run.loss_builder()(features, student_logits, features["label_ids"], 2,
                               ModeKeys.TRAIN)
    names = {op.name.split("/")[0] for op in graph.get_operations()}
    assert {"teacher", "teacher_1"} <= names
    logits_name = run.teachers[0].frozen_graph()[2]
    with tf1.Session() as session:
      soft, z0, z1, s = session.run([parts.per_example_loss,
                                     graph.get_tensor_by_name("teacher/" + logits_name),
                                     graph.get_tensor_by_name("teacher_1/" + logits_name),
                                     student_logits])
  target = 0.25 * np.exp(np_log_softmax(z0 / 3)) + 0.75 * np.exp(np_log_softmax(z1 / 3))
  expected = -np.sum(target * np_log_softmax(s / 3), -1) * 9
  np.testing.assert_allclose(soft, expected, rtol=1e-5)


def test_two_teachers_cached_store_both_and_average_as_online(kit):
  teachers = "%s,%s:3" % (kit.teacher_export, kit.weak_export)
  run = kit.distill("two_cached", do_train=True, alpha=1.0, temperature=3.0,
                    teacher_model=teachers, teacher_logits="cached", num_train_steps=2)
  with captured() as out:
    run.run()
  assert "Wrote teacher logits (2 teachers) for 256 train examples" in out.getvalue()
  record_file = os.path.join(run.config.output_dir, "train.teacher.tf_record")
  with open(record_file + ".json") as f:
    info = json.load(f)
  assert info["num_teachers"] == 2 and len(info["teacher_accuracies"]) == 2
  assert info["teacher_accuracy"] == info["teacher_accuracies"][0]
  # Each record holds teacher 0's logits, then teacher 1's: what each computes alone.
  example = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(record_file))).numpy())
  stored = np.array(example.features.feature["teacher_logits"].float_list.value)
  ids = np.array([example.features.feature["input_ids"].int64_list.value], np.int32)
  with tf.Graph().as_default(), tf1.Session() as session:
    alone = [session.run(teacher.logits(tf.constant(ids), tf.ones_like(ids), tf.zeros_like(ids)))
             for teacher in run.teachers]
  np.testing.assert_allclose(stored, np.concatenate(alone, -1)[0], rtol=1e-4, atol=1e-5)
  # The loss on the cached pair is the online ensemble's: weighted average of softened probs.
  with tf.Graph().as_default(), tf1.Session() as session:
    student = tf.constant([[0.3, -0.2]])
    parts = run.loss_builder()({"teacher_logits": tf.constant(stored[None], tf.float32),
                                "input_mask": tf.ones_like(ids)}, student, tf.constant([0]), 2,
                               ModeKeys.TRAIN)
    soft = session.run(parts.per_example_loss)
  z0, z1 = stored[:2], stored[2:]
  target = 0.25 * np.exp(np_log_softmax(z0 / 3)) + 0.75 * np.exp(np_log_softmax(z1 / 3))
  expected = -np.sum(target * np_log_softmax(np.array([0.3, -0.2]) / 3)) * 9
  np.testing.assert_allclose(soft, [expected], rtol=1e-5)


def test_ensemble_accuracy_and_its_report():
  labels = np.array([0, 1, 1])
  # Teacher 0 right on examples 0 and 1, teacher 1 right on 1 and 2 (confidently on 2).
  logits = np.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
                     [[0.0, 0.5], [0.0, 1.0], [0.0, 4.0]]])
  assert distillation.ensemble_accuracy(labels, logits, [1, 1]) == 1.0
  # Weighted 3:1 towards teacher 0: its mistake on example 2 outweighs teacher 1's confidence.
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  expected = np.mean(np.argmax(0.75 * probs[0] + 0.25 * probs[1], -1) == labels)
  assert distillation.ensemble_accuracy(labels, logits, [3, 1]) == pytest.approx(expected)
  assert distillation.ensemble_accuracy(labels, logits, [1, 1], "logits") == pytest.approx(
      np.mean(np.argmax(logits[0] + logits[1], -1) == labels))
  with captured() as out:
    assert not distillation.report_ensemble(0.9, [0.8, 0.85])
    assert distillation.report_ensemble(0.85, [0.8, 0.85])
  lines = out.getvalue().splitlines()
  assert lines[0] == ("Teachers' average: 0.9000 accuracy on the dev split (best single "
                      "teacher: 0.8500)")
  assert lines[1].startswith("WARNING: the teachers' average reaches 0.8500 accuracy on the dev "
                             "split, no better than teacher 2 of --teacher_model alone (0.8500)")


def test_two_teachers_report_each_and_their_average_on_dev(kit):
  run = kit.distill("two_report", do_train=True, num_train_steps=1,
                    teacher_model="%s,%s:3" % (kit.teacher_export, kit.weak_export))
  with captured() as out:
    run.run()
  log = out.getvalue()
  record_file = os.path.join(run.config.output_dir, "dev.teacher.tf_record")
  labels, stored = [], []
  for record in tf.data.TFRecordDataset(record_file):
    example = tf.train.Example.FromString(record.numpy())
    labels.append(example.features.feature["label_ids"].int64_list.value[0])
    stored.append(example.features.feature["teacher_logits"].float_list.value)
  labels, stored = np.array(labels), np.array(stored)
  z0, z1 = stored[:, :2], stored[:, 2:]
  single = [np.mean(np.argmax(z, -1) == labels) for z in (z0, z1)]
  average = np.mean(np.argmax(0.25 * np.exp(np_log_softmax(z0)) +
                              0.75 * np.exp(np_log_softmax(z1)), -1) == labels)
  for teacher_dir, accuracy in zip((kit.teacher_dir, kit.weak_dir), single):
    assert re.search(r"%s\S* reaches only %.3f|%s\S*: %.4f accuracy on the dev split" % (
        re.escape(os.path.dirname(teacher_dir)), accuracy,
        re.escape(os.path.dirname(teacher_dir)), accuracy), log), log
  if average > max(single):
    assert "Teachers' average: %.4f accuracy on the dev split" % average in log, log
  else:
    assert "WARNING: the teachers' average reaches %.4f accuracy" % average in log, log


def test_every_teacher_is_checked(kit, tmp_path):
  other = str(tmp_path / "other")
  shutil.copytree(kit.weak_dir, other)
  info_path = os.path.join(other, "assets.extra", "bert_export.json")
  with open(info_path) as f:
    info = json.load(f)
  info["labels"] = ["1", "0"]
  write_json(info_path, info)
  with pytest.raises(UsageError) as error:
    kit.distill("checked", do_train=True, teacher_model="%s,%s" % (kit.teacher_export, other))
  assert one_line(error.value).startswith("--teacher_model %s: label list" % other)


# -- the teacher export ----------------------------------------------------------------------

def serving_path(graph_def, outputs):
  """Names of the nodes the outputs depend on."""
  nodes = {node.name: node for node in graph_def.node}
  seen, todo = set(), [name.split(":")[0] for name in outputs]
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    todo.extend(i.lstrip("^").split(":")[0] for i in nodes[name].input)
  return seen


def test_teacher_export_records_inner_tensors_and_serving_is_unchanged(kit):
  info = export.read_export_info(kit.teacher_dir)
  names = info[export.INTERMEDIATE_KEY]
  assert len(names["hidden"]) == 2 and len(names["attention_scores"]) == 2
  assert len(names["attention_probs"]) == 2 and names["embedding"] and names["pooled"]
  graph_def = export_graph(kit.teacher_dir)
  from tensorflow.core.protobuf import saved_model_pb2
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(kit.teacher_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  signature = saved_model.meta_graphs[0].signature_def[export.SIGNATURE_KEY]
  assert sorted(signature.inputs) == ["input_ids", "input_mask", "segment_ids"]
  assert sorted(signature.outputs) == ["label_ids", "logits", "probabilities"]
  path = serving_path(graph_def, [t.name for t in signature.outputs.values()])
  # The serving path is the one build_serving_graph makes (no op added for the records)...
  with tf.Graph().as_default() as graph:
    config = modeling.BertConfig.from_json_file(kit.teacher_config)
    _, outputs = export.build_serving_graph(config, 2)
    reference = serving_path(graph.as_graph_def(), [t.name for t in outputs.values()])
  assert path == reference and len(path) > 100
  # ...and the served model does not compute the inner layers' outputs.
  assert names["hidden"][0].split(":")[0] not in path
  assert all(name.split(":")[0] in {n.name for n in graph_def.node}
             for value in names.values() for name in (value if isinstance(value, list)
                                                      else [value]))

  # After freezing, the inner tensors are reachable, with their shapes and the loaded model's
  # values.
  teacher = distillation.Teacher(kit.teacher_export)
  ids = np.array([[2, 6, 7, 8, 3], [2, 9, 10, 3, 0]], np.int32)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], np.int32)
  keys = ["hidden/0", "hidden/1", "attention_scores/1", "attention_probs/0", "embedding",
          "pooled"]
  with tf.Graph().as_default(), tf1.Session() as session:
    logits, found = teacher.outputs(tf.constant(ids), tf.constant(mask),
                                    tf.zeros_like(tf.constant(ids)), keys)
    frozen = session.run(dict(found, logits=logits))
  with tf.Graph().as_default() as graph, tf1.Session() as session:
    tf1.saved_model.loader.load(session, [export.SERVE_TAG], kit.teacher_dir)
    feed = {"input_ids:0": ids, "input_mask:0": mask, "segment_ids:0": np.zeros_like(ids)}
    loaded = session.run({key: teacher.intermediate_name(key) for key in keys}, feed)
  assert frozen["hidden/1"].shape == (2, 5, 32) and frozen["pooled"].shape == (2, 32)
  assert frozen["attention_scores/1"].shape == (2, 2, 5, 5)
  np.testing.assert_allclose(frozen["attention_probs/0"].sum(-1), 1.0, rtol=1e-5)
  for key in keys:
    np.testing.assert_allclose(frozen[key], loaded[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_older_export_does_logit_kd_and_errors_on_matches(kit, tmp_path):
  old = str(tmp_path / "old")
  shutil.copytree(kit.teacher_dir, old)
  info_path = os.path.join(old, "assets.extra", "bert_export.json")
  with open(info_path) as f:
    info = json.load(f)
  del info[export.INTERMEDIATE_KEY]
  write_json(info_path, info)
  run = kit.distill("old", do_train=True, teacher_model=old)
  graph_def, _ = training_graph(run, cached=False)
  assert [n for n in graph_def.node if n.name.startswith("teacher/")]
  with pytest.raises(UsageError) as error:
    kit.distill("old", do_train=True, teacher_model=old, distill_preset="minilm")
  message = one_line(error.value)
  assert message.startswith("--teacher_model %s: exported without its intermediate" % old)
  assert "re-export" in message


# -- configuration errors --------------------------------------------------------------------

def test_configuration_errors_are_one_line(kit, tmp_path):
  def config_file(obj, count=[0]):
    count[0] += 1
    return write_json(str(tmp_path / ("c%d.json" % count[0])), obj)

  cases = [
      (dict(distill_config=config_file({"matches": [{"feature": "hidden", "teacher_layer": 2,
                                                      "student_layer": 0}]})),
       ["match 0", "teacher_layer 2 is out of range", "2 layers"]),
      (dict(distill_config=config_file({"matches": [{"feature": "attention", "teacher_layer": 0,
                                                      "student_layer": -2}]})),
       ["student_layer -2 is out of range", "1 layers"]),
      (dict(distill_config=config_file({"matches": [{"feature": "hidden", "loss": "kl",
                                                      "teacher_layer": 0,
                                                      "student_layer": 0}]})),
       ["loss 'kl' does not apply to hidden"]),
      (dict(distill_config=config_file({"matches": [{"feature": "logits"}]})),
       ["feature 'logits' is not one of"]),
      (dict(distill_config=config_file({"matches": [], "alpah": 1})), ["unknown key 'alpah'"]),
      (dict(distill_config=config_file({"alpha": {"schedule": "linear", "start": 2}})),
       ["alpha", "[0.0, 1.0]"]),
      (dict(distill_preset="minilm", bert_config_file=kit.heads_config),
       ["equal head counts", "teacher has 2 heads and the student 4"]),
      (dict(distill_preset="pkd_skip"), ["at least 2 layers"]),
      (dict(distill_preset="tinybert", distill_layer_map="0,1"), ["expected 1 teacher layer"]),
      (dict(distill_preset="tinybert", distill_layer_map="5"), ["teacher_layer 5 is out of"]),
      (dict(distill_preset="tinybert", teacher_logits="cached"), ["--teacher_logits=cached"]),
      (dict(distill_stage="intermediate"), ["--distill_stage=intermediate: needs matches"]),
      (dict(distill_preset="minilm", match_teacher="3"), ["--match_teacher", "out of range"]),
      (dict(distill_config=str(tmp_path / "missing.json")), ["cannot read"]),
      (dict(distill_config=config_file({"soft_loss": "kl"})),
       ["soft_loss 'kl' is not one of ce, mse"]),
  ]
  for overrides, words in cases:
    with pytest.raises(UsageError) as error:
      kit.distill("errors", do_train=True, **overrides)
    message = one_line(error.value)
    for word in words:
      assert word in message, (overrides, word, message)


def test_soft_loss_from_flag_and_config_file(tmp_path):
  config = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 8}

  def described(soft_loss, config_file=None):
    made = distill_config.DistillConfig([config], config, ["t"], 0.5, 2.0, config_file,
                                        soft_loss=soft_loss)
    return made.soft_loss, made.describe()[0]

  assert described("ce") == ("ce", "distillation: stage full, alpha 0.5, temperature 2")
  assert described("mse") == ("mse", "distillation: stage full, alpha 0.5, soft loss: mse of "
                                      "the logits (no temperature)")
  override = write_json(str(tmp_path / "mse.json"), {"soft_loss": "mse"})
  assert described("ce", override)[0] == "mse"  # the file's keys take precedence


def test_presets_layer_maps():
  tiny = distill_config.preset_matches("tinybert", None, 12, 4)
  assert [m["teacher_layer"] for m in tiny if m["feature"] == "hidden"] == [2, 5, 8, 11]
  assert [m["feature"] for m in tiny[:3]] == ["embedding", "hidden", "attention"]
  skip = distill_config.preset_matches("pkd_skip", None, 12, 6)
  assert [(m["student_layer"], m["teacher_layer"]) for m in skip] == [(0, 1), (1, 3), (2, 5),
                                                                       (3, 7), (4, 9)]
  last = distill_config.preset_matches("pkd_last", None, 12, 6)
  assert [m["teacher_layer"] for m in last] == [6, 7, 8, 9, 10]
  assert all(m["loss"] == "pkd" for m in skip + last)
  (minilm,) = distill_config.preset_matches("minilm", None, 12, 4)
  assert (minilm["feature"], minilm["loss"], minilm["teacher_layer"],
          minilm["student_layer"]) == ("attention", "kl", 11, 3)
  (top,) = distill_config.preset_matches("last_hidden", None, 6, 2)
  assert (top["feature"], top["loss"], top["teacher_layer"], top["student_layer"]) == (
      "hidden", "mse", 5, 1)
  assert distill_config.preset_matches("last_hidden", [0, 3], 6, 2)[0]["teacher_layer"] == 3
  assert distill_config.preset_matches("none", None, 12, 4) == []


# -- TinyBERT end to end, and two stages -----------------------------------------------------

def progress(log, name):
  """The values of a summary in the progress lines ("step 10/40 loss ... name value ...")."""
  lines = [line for line in log.splitlines() if line.startswith("step ")]
  return [float(v) for line in lines for v in re.findall(r" %s (\S+)" % re.escape(name), line)]


@pytest.fixture(scope="module")
def tinybert_student(kit):
  export_base = os.path.join(kit.root, "tinybert_export")
  config = write_json(os.path.join(kit.root, "schedules.json"), {
      "alpha": {"schedule": "linear", "start": 0.9, "end": 0.1},
      "matches": [{"feature": "pooled", "loss": "pkd",
                   "weight": {"schedule": "cosine", "start": 1, "end": 0, "to_step": 20}}]})
  run = kit.distill("tinybert", bert_config_file=kit.narrow_config, distill_preset="tinybert",
                    distill_config=config,
                    num_train_steps=40, log_every_n_steps=10, do_train=True, do_eval=True,
                    do_export=True, export_dir=export_base)
  with captured() as out:
    run.run()
  return types.SimpleNamespace(output_dir=run.config.output_dir, log=out.getvalue(),
                               version_dir=export.resolve_version_dir(export_base))


def test_tinybert_run_trains_matches_and_exports_no_projection(kit, tinybert_student):
  log = tinybert_student.log
  for name in ("match/embedding_mse", "match/hidden_s0_t1_mse", "match/attention_s0_t1_mse",
               "hard_loss", "soft_loss"):
    values = progress(log, name)
    assert len(values) == 4, (name, log)
  for name in ("match/hidden_s0_t1_mse", "match/attention_s0_t1_mse"):
    values = progress(log, name)
    assert values[-1] < values[0], (name, values)
  # Scheduled values in force are in the progress line: "step s" trained at global step s-1.
  assert log.count("distillation: stage full, alpha linear 0.9→0.1, temperature 2") == 1
  assert "match pooled_pkd weight cosine 1→0" in log
  alphas, weights = progress(log, "alpha"), progress(log, "weight/pooled_pkd")
  assert len(alphas) == len(weights) == 4
  for step, alpha, weight in zip((10, 20, 30, 40), alphas, weights):
    assert alpha == pytest.approx(0.9 - 0.8 * (step - 1) / 40, abs=1e-4)
    assert weight == pytest.approx(0.5 * (1 + math.cos(math.pi * min((step - 1) / 20, 1))),
                                   abs=1e-4)
  # The projections (student width 16 → teacher 32) are trained and checkpointed...
  trained = checkpoint_variables(tinybert_student.output_dir)
  projections = sorted(n for n in trained if n.startswith(distill_matches.PROJECTION_SCOPE))
  assert "distill_projection/hidden_s0_t1_mse/kernel" in projections
  assert trained["distill_projection/hidden_s0_t1_mse/kernel"] == [16, 32]
  # ...but neither in the export's variables nor in its serving graph.
  exported = checkpoint_variables(os.path.join(tinybert_student.version_dir, "variables",
                                               "variables"))
  assert exported and not [n for n in exported if "distill" in n or n.startswith("teacher")]
  assert set(exported) == {n for n in trained if (n.startswith("bert/") or
                                                  n.startswith("output_")) and "adam" not in n
                           and "Adam" not in n}
  nodes = export_graph(tinybert_student.version_dir).node
  assert not [n.name for n in nodes if "distill" in n.name or n.name.startswith("teacher")]
  results = dict(line.split(" = ") for line in open(
      os.path.join(tinybert_student.output_dir, "eval_results.txt")).read().splitlines())
  assert float(results["global_step"]) == 40


def test_two_stages_continue_from_the_first_checkpoint(kit):
  first = kit.distill("stage1", bert_config_file=kit.narrow2_config, distill_preset="tinybert",
                      distill_stage="intermediate", num_train_steps=6, log_every_n_steps=3,
                      do_train=True)
  with captured() as out:
    first.run()
  stage1_log = out.getvalue()
  assert progress(stage1_log, "match/hidden_s1_t1_mse")
  stage1 = tf.train.latest_checkpoint(first.config.output_dir)
  assert stage1.endswith("model.ckpt-6")
  second = kit.distill("stage2", bert_config_file=kit.narrow2_config, alpha=0.5,
                       init_checkpoint=first.config.output_dir, num_train_steps=1,
                       learning_rate=1e-9, do_train=True)
  with captured() as out:
    second.run()
  log = out.getvalue()
  assert "from %s" % stage1 in log, log
  assert not progress(log, "match/hidden_s1_t1_mse")
  before = tf.train.load_checkpoint(stage1)
  after = tf.train.load_checkpoint(tf.train.latest_checkpoint(second.config.output_dir))
  names = [n for n in after.get_variable_to_shape_map() if n.startswith("bert/")
           and "adam" not in n.lower()]
  assert len(names) > 30
  for name in names:
    np.testing.assert_allclose(after.get_tensor(name), before.get_tensor(name), atol=1e-5,
                               err_msg=name)
  assert not [n for n in after.get_variable_to_shape_map() if n.startswith("distill")]
  assert after.get_tensor("global_step") == 1


def test_loss_summaries_are_finite_on_an_empty_slice(kit):
  # Under --distribution=mirrored a replica's slice of an epoch's last batch can be empty; its
  # summaries are averaged with the other replicas', so they must not be nan.
  run = kit.distill("empty_slice", do_train=True, teacher_logits="cached")
  with tf.Graph().as_default(), tf1.Session() as session, captured():
    features = {"teacher_logits": tf.zeros([0, 2]), "input_mask": tf.zeros([0, 4], tf.int32)}
    parts = run.loss_builder()(features, tf.zeros([0, 2]), tf.zeros([0], tf.int32), 2,
                               ModeKeys.TRAIN)
    values = session.run(parts.summaries)
  assert values["hard_loss"] == 0.0 and values["soft_loss"] == 0.0
