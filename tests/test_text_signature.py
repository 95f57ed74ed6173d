"""The `text` signature: raw strings tokenized in the graph (bert/text_signature.py).

A randomly initialised tiny classifier is exported once per module; parity with FullTokenizer is
checked on a sample (bench/text_signature_bench.py runs the full dev sets and every code point).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bert import classifier, export, features, text_signature, tokenization

import conftest

pytest.importorskip("tensorflow_text", reason="pip install 'tensorflow-text>=2.16,<2.22'")
tf1 = tf.compat.v1
MAX_SEQ_LENGTH = 16
WORDS = ["good", "food", "very", "slow", "##s", "##er", "cafe", "naive", "un", "##able", "!",
         ",", ".", "?", "'", "a", "b", "$", "(", ")"]
SAMPLE = [
    "味道很好", "Very GOOD foods!", "Café naïve, unable?", "\u3000好\u3000吃\u3000", "a\u200bb",
    "x\u0000y\u0001z\u0085", "ＦＵＬＬ　ｗｉｄｔｈ，１２３！", "😀 好吃 \ue000",
    "ΟΔΟΣ İstanbul ﬁne",
    "mixed中文English混合", "don't (stop)", "a" * 201 + " good", "好" * 10000, "good " * 3000,
    "", " \t\n", "\u2028good\u2029food\u00a0slow", "e\u0301 a\u0300",
]
PAIRS = [("味道很好", "Very good food"), ("好" * 30, "good"), ("good", "好" * 30),
         ("好" * 9, "味" * 9), ("", "good"), ("good", ""), ("", "")]


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("text_signature"))
  vocab = os.path.join(root, "vocab.txt")
  conftest.write_vocab(vocab, conftest.VOCAB_TOKENS + [w for w in WORDS
                                                       if w not in conftest.VOCAB_TOKENS])
  size = len(tokenization.load_vocab(vocab))
  config = conftest.tiny_config(vocab_size=size)
  graph = tf.Graph()
  with graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    classifier.classifier_logits(config, False, ids, ids, ids, 2)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      checkpoint = tf1.train.Saver().save(session, os.path.join(root, "model.ckpt"))
  dirs = {}
  for lower in (True, False):
    dirs[lower] = export.export_saved_model(
        os.path.join(root, "export-%s" % lower), checkpoint, config, ["neg", "pos"], vocab, lower,
        MAX_SEQ_LENGTH, warmup_inputs=export.default_warmup_inputs(MAX_SEQ_LENGTH, 2, 3, 1))
  return {"root": root, "vocab": vocab, "dirs": dirs, "checkpoint": checkpoint, "config": config}


def _session(version_dir):
  graph = tf.Graph()
  session = tf1.Session(graph=graph)
  with graph.as_default():
    meta = tf1.saved_model.loader.load(session, ["serve"], version_dir)
  return session, meta


def _graph_ids(session, texts_a, texts_b=None):
  feed = {"text/text_a:0": texts_a}
  if texts_b is not None:
    feed["text/text_b:0"] = texts_b
  names = ("input_ids", "segment_ids", "input_mask", "num_tokens", "truncated")
  return dict(zip(names, session.run(["text/%s:0" % n for n in names], feed)))


@pytest.mark.parametrize("lower", [True, False])
def test_ids_equal_full_tokenizer(text_export, lower):
  session, _ = _session(text_export["dirs"][lower])
  tokenizer = tokenization.FullTokenizer(text_export["vocab"], lower)
  points = ["a%sb" % chr(cp) for cp in range(0, 0x110000, 331) if not 0xD800 <= cp <= 0xDFFF]
  cases = [(SAMPLE, None), ([a for a, _ in PAIRS], [b for _, b in PAIRS]), (points, None)]
  for texts_a, texts_b in cases:
    got = _graph_ids(session, texts_a, texts_b)
    for row, a in enumerate(texts_a):
      b = texts_b[row] if texts_b else None
      want = features.convert_single_example(features.InputExample("x", a, b or None), {},
                                             MAX_SEQ_LENGTH, tokenizer)
      n = int(got["input_mask"][row].sum())
      assert got["input_ids"][row, :n].tolist() == want.input_ids, (a, b)
      assert got["segment_ids"][row, :n].tolist() == want.segment_ids, (a, b)
      assert not got["input_ids"][row, n:].any()
      assert bool(got["truncated"][row]) == want.truncated, (a, b)
      count = len(tokenizer.tokenize(a)) + (len(tokenizer.tokenize(b)) if b else 0)
      assert got["num_tokens"][row] == count
  session.close()


def test_truncated_lengths_is_googles_loop():
  len_a, len_b = np.meshgrid(np.arange(0, 20), np.arange(0, 20))
  len_a, len_b = len_a.ravel(), len_b.ravel()
  kept_a, kept_b = text_signature.truncated_lengths(tf.constant(len_a), tf.constant(len_b), 13)
  for a, b, ka, kb in zip(len_a, len_b, kept_a.numpy(), kept_b.numpy()):
    tokens_a, tokens_b = list(range(a)), list(range(b))
    if b:
      features.truncate_pair(tokens_a, tokens_b, 13 - 3)
    else:
      tokens_a = tokens_a[:13 - 2]
    assert (ka, kb) == (len(tokens_a), len(tokens_b)), (a, b)


def test_ops_are_on_the_servers_allow_list(text_export):
  allowed = set(dir(tf.raw_ops)) | text_signature.SERVER_TEXT_OPS[text_signature.MIN_SERVER_VERSION]
  for lower, version_dir in text_export["dirs"].items():
    ops = export.graph_op_types(version_dir)
    assert ops <= allowed, sorted(ops - allowed)
    text_ops = set(text_signature.TEXT_OPS) - ({"NormalizeUTF8"} if not lower else set())
    assert ops - set(dir(tf.raw_ops)) == text_ops  # NFD only when lower-casing
    info = export.read_export_info(version_dir)
    assert info["min_model_server_version"] == text_signature.MIN_SERVER_VERSION == "2.2"
    assert info["text_signature"]["inputs"] == ["text_a", "text_b"]


def test_serving_default_and_frozen_teacher_hold_no_tokenizer(text_export):
  from bert import distillation
  version_dir = text_export["dirs"][True]
  session, meta = _session(version_dir)
  assert sorted(meta.signature_def) == ["serving_default", "text"]
  signature = meta.signature_def["serving_default"]
  assert sorted(signature.inputs) == ["input_ids", "input_mask", "segment_ids"]
  text = meta.signature_def["text"]
  assert {k: v.dtype for k, v in text.inputs.items()} == {"text_a": 7, "text_b": 7}  # DT_STRING
  assert sorted(text.outputs) == sorted(text_signature.TEXT_OUTPUTS)
  session.close()
  graph_def, inputs, logits = distillation.Teacher(version_dir).frozen_graph()
  ops = {node.op for node in graph_def.node}
  assert not ops & set(text_signature.TEXT_OPS)
  assert not [n.name for n in graph_def.node if n.name.startswith(text_signature.TEXT_SCOPE + "/")]
  assert "StringSplitV2" not in ops and "LookupTableFindV2" not in ops


REST_RUNNER = r'''
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (what tensorflow_model_server links)
tf1 = tf.compat.v1
version_dir, body = sys.argv[1], json.loads(sys.argv[2])
session = tf1.Session(graph=tf.Graph())
with session.graph.as_default():
  meta = tf1.saved_model.loader.load(session, ["serve"], version_dir)
signature = meta.signature_def[body["signature_name"]]
names = sorted(body["instances"][0])  # the server feeds the inputs the request names
feed = {signature.inputs[n].name: [row[n] for row in body["instances"]] for n in names}
out = session.run({k: v.name for k, v in signature.outputs.items()}, feed)
rows = [{k: (v[i].decode() if isinstance(v[i], bytes) else v[i].tolist()) for k, v in out.items()}
        for i in range(len(body["instances"]))]
print(json.dumps({"predictions": rows}))
'''


def test_rest_body_with_raw_strings_in_a_fresh_process(text_export, tmp_path):
  version_dir = text_export["dirs"][True]
  runner = tmp_path / "runner.py"
  runner.write_text(REST_RUNNER, encoding="utf-8")
  tokenizer = tokenization.FullTokenizer(text_export["vocab"], True)
  single = ["味道很好", "Very GOOD foods!", ""]
  pairs = [("味道很好", "Very good food"), ("好" * 30, "good"), ("good", "")]
  for rows, body in (
      ([(t, None) for t in single],
       {"signature_name": "text", "instances": [{"text_a": t} for t in single]}),
      (pairs, {"signature_name": "text",
               "instances": [{"text_a": a, "text_b": b} for a, b in pairs]})):
    proc = conftest.run_entry([str(runner), version_dir, json.dumps(body, ensure_ascii=False)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    predictions = json.loads(proc.stdout.strip().splitlines()[-1])["predictions"]
    batch = features.pad_features([features.convert_single_example(
        features.InputExample("x", a, b or None), {}, MAX_SEQ_LENGTH, tokenizer) for a, b in rows])
    session, meta = _session(version_dir)
    signature = meta.signature_def["serving_default"]
    want = session.run(signature.outputs["probabilities"].name,
                       {signature.inputs[k].name: v for k, v in batch.items()})
    session.close()
    got = np.array([p["probabilities"] for p in predictions])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [p["labels"] for p in predictions] == [["neg", "pos"][p["label_ids"]]
                                                  for p in predictions]
    assert [p["label_ids"] for p in predictions] == want.argmax(-1).tolist()
  # ("good", ""): a text_b with no tokens is a single text (empty strings: the next test).
  assert predictions[-1]["num_tokens"] == 1 and not predictions[-1]["truncated"]


def test_empty_strings_are_cls_sep(text_export):
  session, meta = _session(text_export["dirs"][True])
  got = _graph_ids(session, ["", "\u200b", " "], ["", "", ""])
  assert got["input_ids"].tolist() == [[2, 3]] * 3  # conftest vocab: [CLS] = 2, [SEP] = 3
  assert got["num_tokens"].tolist() == [0, 0, 0]
  with pytest.raises(tf.errors.InvalidArgumentError, match="text_b must have as many rows"):
    _graph_ids(session, ["a", "b"], ["a"])
  session.close()


def test_warmup_covers_both_signatures(text_export):
  prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2",
                                           reason=conftest.SERVING_API_MISSING)
  path = os.path.join(text_export["dirs"][True], "assets.extra", export.WARMUP_FILE)
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]
  names = [log.predict_log.request.model_spec.signature_name for log in logs]
  assert names == ["serving_default"] * 4 + ["text"] * 4
  session, meta = _session(text_export["dirs"][True])
  for log in logs[4:]:
    request = log.predict_log.request
    signature = meta.signature_def["text"]
    feed = {signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
    probabilities = session.run(signature.outputs["probabilities"].name, feed)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
  session.close()


def test_export_without_tensorflow_text(text_export, monkeypatch, capsys):
  monkeypatch.setattr(text_signature, "text_ops", lambda: None)
  monkeypatch.setattr(text_signature, "_LOGGED", [])
  for _ in range(2):
    version_dir = export.export_saved_model(
        os.path.join(text_export["root"], "plain"), text_export["checkpoint"],
        text_export["config"], ["neg", "pos"], text_export["vocab"], True, MAX_SEQ_LENGTH)
  out = capsys.readouterr().out
  assert out.count("Exporting without the raw-text signature 'text': tensorflow-text is not "
                   "installed") == 1
  assert not export.graph_op_types(version_dir) - set(dir(tf.raw_ops))
  info = export.read_export_info(version_dir)
  assert info["text_signature"] is None and "min_model_server_version" not in info
  from bert import predictor
  loaded = predictor.ExportedClassifier(version_dir)
  assert loaded.predict(["味道很好"]).shape == (1, 2)
  loaded.close()
  # An export with the text signature cannot load without the package: a one-line error.
  from bert.errors import UsageError
  with pytest.raises(UsageError, match="needs? the tensorflow-text package"):
    predictor.ExportedClassifier(text_export["dirs"][True])
