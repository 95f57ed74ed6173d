"""SavedModel export of a tiny trained model, checked by loading it in a fresh process."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bert import export, serving_cpu

import conftest

conftest.use_exact_float32()

# Loads each export with TF2's loader in a fresh process, runs its serving signature on the
# inputs in inputs.npz and replays its warmup requests; writes result.json and outputs.npz.
LOADER = r'''
import json, os, sys
import numpy as np
import tensorflow as tf
try:
  import tensorflow_text  # noqa: F401  (the text signature's ops)
except ImportError:
  pass

work, version_dirs = sys.argv[1], sys.argv[2:]
inputs = dict(np.load(os.path.join(work, "inputs.npz")))
result, arrays = {}, {}
for index, version_dir in enumerate(version_dirs):
  loaded = tf.saved_model.load(version_dir, tags=["serve"])
  signature = loaded.signatures["serving_default"]
  args, kwargs = signature.structured_input_signature
  info = {"signatures": sorted(loaded.signatures.keys()),
          "inputs": {name: [spec.dtype.name, spec.shape.as_list()]
                     for name, spec in kwargs.items()},
          "outputs": {name: [spec.dtype.name, spec.shape.as_list()]
                      for name, spec in signature.structured_outputs.items()}}
  outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
  for name, value in outputs.items():
    arrays["%d/%s" % (index, name)] = value.numpy()
  warmup = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
  replayed = []
  try:
    from tensorflow_serving.apis import prediction_log_pb2
  except ImportError:
    prediction_log_pb2 = None
  if prediction_log_pb2 is not None and os.path.exists(warmup):
    for record in tf.data.TFRecordDataset(warmup):
      log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
      request = log.predict_log.request
      feeds = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
      if "text_a" in feeds and "text_b" not in feeds:  # a loaded signature takes every input
        feeds["text_b"] = tf.fill(tf.shape(feeds["text_a"]), "")
      out = loaded.signatures[request.model_spec.signature_name](**feeds)
      probabilities = out["probabilities"].numpy()
      replayed.append({"signature": request.model_spec.signature_name,
                       "input_shape": list(feeds.get("input_ids", feeds.get("text_a")).shape),
                       "probabilities_shape": list(probabilities.shape),
                       "sums_to_one": bool(np.allclose(probabilities.sum(-1), 1.0, atol=1e-5))})
  info["warmup"] = replayed if prediction_log_pb2 is not None else None
  result[version_dir] = info
np.savez(os.path.join(work, "outputs.npz"), **arrays)
with open(os.path.join(work, "result.json"), "w") as f:
  json.dump(result, f)
'''

# The serving CPU the first export is built for: 4 cores (TensorFlow's default pool), 1 MiB L2.
SERVING_CPU = serving_cpu.ServingCpu(2 ** 20, 4)
TEACHER_T = 2.0


def _padded_inputs(features):
  length = max(len(f.input_ids) for f in features)
  ids = np.zeros([len(features), length], np.int32)
  mask, segments = np.zeros_like(ids), np.zeros_like(ids)
  for row, feature in enumerate(features):
    n = len(feature.input_ids)
    ids[row, :n], mask[row, :n], segments[row, :n] = feature.input_ids, 1, feature.segment_ids
  return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
  """The tiny model exported at T=1 and as a teacher at T=2, then loaded in one fresh process."""
  work = tmp_path_factory.mktemp("export")
  export_dir = str(work / "export")
  stale = os.path.join(export_dir, export.TEMP_PREFIX + "1700000000-999999999")
  os.makedirs(os.path.join(stale, "variables"))  # left by a killed exporter
  vocab = tiny_model.vocab_file
  from bert import tokenization
  ids = tokenization.load_vocab(vocab)
  warmup = export.default_warmup_inputs(tiny_model.max_seq_length, ids["[CLS]"], ids["[SEP]"],
                                        ids["[UNK]"])
  version_dir = export.export_saved_model(
      export_dir, tiny_model.checkpoint, tiny_model.config, tiny_model.labels, vocab, True,
      tiny_model.max_seq_length, extra_info={"task_name": "emotion"}, warmup_inputs=warmup,
      row_blocks=SERVING_CPU)
  # The teacher export leaves the rows whole (--noexport_row_blocks): the probability checks
  # below compare the two graphs' logits too.
  teacher_dir = export.export_saved_model(
      export_dir, tiny_model.checkpoint, tiny_model.config, tiny_model.labels, vocab, True,
      tiny_model.max_seq_length, temperature=TEACHER_T, row_blocks=False)

  inputs = _padded_inputs(tiny_model.features)
  np.savez(str(work / "inputs.npz"), **inputs)
  loader = work / "loader.py"
  loader.write_text(LOADER, encoding="utf-8")
  proc = conftest.run_entry([str(loader), str(work), version_dir, teacher_dir])
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(str(work / "result.json")) as f:
    result = json.load(f)
  outputs = dict(np.load(str(work / "outputs.npz")))
  # The training graph's predictions on the same examples (dynamic padding, batches of 8).
  training = list(tiny_model.trainer.predict(tiny_model.eval_input_fn, batch_size=8))
  return {"export_dir": export_dir, "version_dir": version_dir, "teacher_dir": teacher_dir,
          "stale": stale, "warmup": warmup, "result": result, "inputs": inputs,
          "served": {k.split("/")[1]: v for k, v in outputs.items() if k.startswith("0/")},
          "teacher": {k.split("/")[1]: v for k, v in outputs.items() if k.startswith("1/")},
          "training_logits": np.stack([r["logits"] for r in training]),
          "training_probabilities": np.stack([r["probabilities"] for r in training])}


def test_signature_in_a_fresh_process(exported, tiny_model):
  info = exported["result"][exported["version_dir"]]
  assert info["signatures"] == ["serving_default", "text"]  # text: bert/text_signature.py
  assert info["inputs"] == {name: ["int32", [None, None]]
                            for name in ("input_ids", "input_mask", "segment_ids")}
  num_labels = len(tiny_model.labels)
  assert info["outputs"]["probabilities"] == ["float32", [None, num_labels]]
  assert info["outputs"]["logits"] == ["float32", [None, num_labels]]
  assert info["outputs"]["label_ids"] == ["int32", [None]]

  from tensorflow.core.protobuf import saved_model_pb2
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(exported["version_dir"], "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  assert [list(m.meta_info_def.tags) for m in saved_model.meta_graphs] == [["serve"]]
  signature = saved_model.meta_graphs[0].signature_def["serving_default"]
  assert signature.method_name == "tensorflow/serving/predict"
  for name in ("input_ids", "input_mask", "segment_ids"):
    assert [d.size for d in signature.inputs[name].tensor_shape.dim] == [-1, -1]


def test_served_predictions_equal_the_training_graph(exported):
  served = exported["served"]
  np.testing.assert_allclose(served["probabilities"].sum(axis=1), 1.0, atol=1e-6)
  logits = served["logits"]
  softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
  softmax /= softmax.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(served["probabilities"], softmax, atol=1e-6)
  np.testing.assert_array_equal(served["label_ids"], np.argmax(logits, axis=1))
  assert served["label_ids"].dtype == np.int32
  np.testing.assert_allclose(logits, exported["training_logits"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(served["probabilities"], exported["training_probabilities"],
                             atol=1e-5, rtol=0)


def test_teacher_export_divides_logits_by_temperature(exported):
  teacher = exported["teacher"]
  np.testing.assert_allclose(teacher["logits"], exported["training_logits"] / TEACHER_T,
                             atol=1e-5, rtol=0)
  z = exported["training_logits"] / TEACHER_T
  expected = np.exp(z - z.max(axis=1, keepdims=True))
  expected /= expected.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(teacher["probabilities"], expected, atol=1e-5)
  info = export.read_export_info(exported["teacher_dir"])
  assert info["temperature"] == TEACHER_T


def test_version_dirs_are_numeric_and_no_temp_dir_is_left(exported):
  base = exported["export_dir"]
  names = sorted(os.listdir(base))
  assert all(name.isdigit() for name in names), names
  assert not os.path.exists(exported["stale"])
  assert len(names) == 2  # each export is a version of its own, even within one second
  assert export.numeric_versions(base) == sorted(map(int, names), reverse=True)
  assert export.resolve_version_dir(base) == os.path.join(base, str(max(map(int, names))))
  assert os.path.basename(exported["version_dir"]) in names
  # An export is a valid --init_checkpoint: its newest version's variables.
  from bert import checkpoint_init
  newest = export.resolve_version_dir(base)
  assert checkpoint_init.resolve_checkpoint(base) == os.path.join(newest, "variables", "variables")
  assert checkpoint_init.resolve_checkpoint(exported["version_dir"]) == os.path.join(
      exported["version_dir"], "variables", "variables")


def test_only_core_ops_and_no_training_state(exported, tiny_model):
  from tensorflow.python.framework import op_def_registry
  ops = export.graph_op_types(exported["version_dir"])
  assert {"Placeholder", "Softmax", "ArgMax"} <= ops
  # Core ops, plus the text signature's TensorFlow Text ops (tests/test_text_signature.py).
  from bert import text_signature
  assert [op for op in ops if op_def_registry.get(op) is None] == []
  assert ops - set(text_signature.TEXT_OPS) <= set(dir(tf.raw_ops))
  assert not [op for op in ops if "Apply" in op or ">" in op]  # no optimizer, no custom ops

  variables = dict(tf.train.list_variables(
      os.path.join(exported["version_dir"], "variables", "variables")))
  assert not [n for n in variables if "adam_" in n or "global_step" in n or "loss_scale" in n]
  training = dict(tf.train.list_variables(tiny_model.checkpoint))
  model_variables = {n: s for n, s in training.items()
                     if not n.endswith(("adam_m", "adam_v")) and n != "global_step"}
  assert variables == model_variables
  assert "output_weights" in variables and "bert/embeddings/word_embeddings" in variables


def test_assets_and_recorded_settings(exported, tiny_model):
  version_dir = exported["version_dir"]
  with open(os.path.join(version_dir, "assets", "vocab.txt"), encoding="utf-8") as f:
    assert f.read().split("\n")[:-1] == conftest.VOCAB_TOKENS
  with open(os.path.join(version_dir, "assets.extra", export.INFO_FILE), encoding="utf-8") as f:
    info = json.load(f)
  assert info["labels"] == tiny_model.labels
  assert info["do_lower_case"] is True
  assert info["max_seq_length"] == tiny_model.max_seq_length
  assert info["bert_config"] == tiny_model.config.to_dict()
  assert info["temperature"] == 1.0
  assert info["task_name"] == "emotion"
  read = export.read_export_info(version_dir)
  assert read["vocab_file"] == os.path.join(version_dir, "assets", "vocab.txt")


def test_warmup_requests_parse_and_replay(exported):
  prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2",
                                           reason=conftest.SERVING_API_MISSING)
  path = os.path.join(exported["version_dir"], "assets.extra", export.WARMUP_FILE)
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]
  assert len(logs) == len(exported["warmup"]) + 4 == 8  # + the text signature's 4
  for log, inputs in zip(logs, exported["warmup"]):
    request = log.predict_log.request
    assert request.model_spec.signature_name == "serving_default"
    assert sorted(request.inputs) == ["input_ids", "input_mask", "segment_ids"]
    for name, value in inputs.items():
      decoded = tf.make_ndarray(request.inputs[name])
      assert decoded.dtype == np.int32
      np.testing.assert_array_equal(decoded, value)
  replayed = exported["result"][exported["version_dir"]]["warmup"]
  assert [r["input_shape"] for r in replayed] == [[1, 16], [1, 24], [8, 16], [8, 24], [1], [1],
                                                  [8], [8]]
  for r in replayed:
    assert r["signature"] == ("text" if len(r["input_shape"]) == 1 else "serving_default")
    assert r["probabilities_shape"] == [r["input_shape"][0], 2]
    assert r["sums_to_one"]


def test_row_blocks_are_in_the_export_unless_turned_off(exported, tiny_model):
  min_rows = SERVING_CPU.row_split_min_rows(tiny_model.config)
  assert min_rows is not None  # the tiny model qualifies (its requests are below the minimum)
  assert "SplitV" in export.graph_op_types(exported["version_dir"])
  assert "SplitV" not in export.graph_op_types(exported["teacher_dir"])
  split, whole = (export.read_export_info(exported[d]) for d in ("version_dir", "teacher_dir"))
  assert split["row_blocks_from_rows"] == min_rows
  assert split["serving_cpu"] == {"l2_bytes": 2 ** 20, "cores": 4}
  assert (whole["row_blocks_from_rows"], whole["serving_cpu"]) == (None, None)
  assert split["serving_intra_op_threads"] == whole["serving_intra_op_threads"] == 0
  # What the benchmarks and scripts/serve.sh give the server for an export's recorded threads.
  from bert.loaded_export import serving_session_config
  for recorded, intra in ((1, 1), (0, 2)):
    session_config = serving_session_config(dict(split, serving_intra_op_threads=recorded), 2)
    assert session_config.intra_op_parallelism_threads == intra
    assert session_config.inter_op_parallelism_threads == 2
