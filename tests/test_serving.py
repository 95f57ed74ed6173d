"""Serving: scripts/predict_client.py (REST / gRPC / in-process) and scripts/serve.sh.

A tiny classifier is trained for a few steps on a generated `text&label` emotion data set and
exported with bert.export.export_saved_model (once per module). tensorflow_model_server is not
installable here, so the REST and gRPC servers are stand-ins that run the real SavedModel, and
serve.sh is checked through --dry-run and its error paths.
"""

import http.server
import io
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
from concurrent import futures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from bert.errors import UsageError
from conftest import SERVING_API_MISSING, load_script

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

SERVE_SH = os.path.join(REPO_ROOT, "scripts", "serve.sh")
CLIENT_PY = os.path.join(REPO_ROOT, "scripts", "predict_client.py")
LABELS = ["0", "1"]
MAX_SEQ_LENGTH = 20
TOKENS = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
          list("好差很不错太慢快吃饭菜送餐味道一般贵香冷热") +
          ["good", "bad", "food", "very", "slow", "fast", "##s", "&", ",", "!"])
POSITIVE, NEGATIVE, NEUTRAL = list("好错快香热"), list("差慢贵冷"), list("很不太吃饭菜送餐味道一般")
# Upper case (lower-cased by the export's settings), an unknown character, wordpieces, `&`,
# punctuation, and one text longer than max_seq_length.
TEXTS = ["味道很好", "送餐太慢了", "Very GOOD food!", "菜 bad,slow", "好&差",
         "味道" * 15, "X"]


client = load_script("predict_client")


def load_signature(version_dir, signature_name="serving_default"):
  """The export's signature through TensorFlow 2's own loader: an oracle independent of
  bert.loaded_export (the toolkit's loader), closer to how a server reads the SavedModel."""
  import tensorflow as tf
  from bert import text_signature  # noqa: F401  (registers TensorFlow Text's ops)
  return tf.saved_model.load(version_dir, tags=["serve"]).signatures[signature_name]


def _review_lines(count, seed):
  rng = random.Random(seed)
  lines = []
  for index in range(count):
    label = index % 2
    body = [rng.choice(NEUTRAL) for _ in range(rng.randint(2, 10))]
    for _ in range(rng.randint(1, 3)):
      body.insert(rng.randrange(len(body) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    lines.append("%s&%d" % ("".join(body), label))
  return lines


def _write_records(path, examples, tokenizer):
  from bert import classifier_data
  features = classifier_data.convert_examples_to_features(examples, LABELS, MAX_SEQ_LENGTH,
                                                          tokenizer)
  classifier_data.write_records(path, (classifier_data.feature_to_example(f) for f in features),
                                {"test": path}, {})
  return features


class TinyExport(object):
  """Train a tiny classifier a few steps on generated reviews, then export it."""

  def __init__(self, root):
    from bert import classifier, classifier_data, export, modeling, tokenization
    from bert.training import Trainer
    self.root = root
    self.vocab_file = os.path.join(root, "vocab.txt")
    with open(self.vocab_file, "w", encoding="utf-8") as f:
      f.write("\n".join(TOKENS) + "\n")
    self.config = modeling.BertConfig.from_dict({
        "vocab_size": len(TOKENS), "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 32, "type_vocab_size": 2, "initializer_range": 0.02})
    data_dir = os.path.join(root, "data")
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "train.csv"), "w", encoding="utf-8") as f:
      f.write("\n".join(_review_lines(48, seed=1)) + "\n")
    self.tokenizer = tokenization.FullTokenizer(self.vocab_file, do_lower_case=True)
    examples = classifier_data.get_processor("emotion").get_train_examples(data_dir)
    record_file = os.path.join(root, "train.tf_record")
    _write_records(record_file, examples, self.tokenizer)
    steps = 80
    self.model_fn = classifier.model_fn_builder(self.config, LABELS, learning_rate=3e-3,
                                                num_train_steps=steps, num_warmup_steps=0)
    self.trainer = Trainer(self.model_fn, os.path.join(root, "model"), params={"seed": 3},
                           log_every_n_steps=1000)
    self.checkpoint = self.trainer.train(
        classifier_data.input_fn_builder(record_file, True, MAX_SEQ_LENGTH, seed=1), steps, 16)
    vocab = self.tokenizer.vocab
    self.base_dir = os.path.join(root, "export", "student")
    self.version_dir = export.export_saved_model(
        self.base_dir, self.checkpoint, self.config, LABELS, self.vocab_file, True,
        MAX_SEQ_LENGTH, extra_info={"task_name": "emotion"},
        warmup_inputs=export.default_warmup_inputs(MAX_SEQ_LENGTH, vocab["[CLS]"],
                                                   vocab["[SEP]"], vocab["[UNK]"]))

  def training_graph_probabilities(self, texts):
    """Trainer.predict (the model_fn's PREDICT graph, from the checkpoint) on raw texts."""
    from bert import classifier_data
    examples = [classifier_data.InputExample("p-%d" % i, t, None, "0") for i, t in enumerate(texts)]
    record_file = os.path.join(self.root, "predict.tf_record")
    _write_records(record_file, examples, self.tokenizer)
    input_fn = classifier_data.input_fn_builder(record_file, False, MAX_SEQ_LENGTH)
    return np.array([p["probabilities"] for p in self.trainer.predict(input_fn, 3)])


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
  return TinyExport(str(tmp_path_factory.mktemp("serving")))


# -- stand-in servers running the real SavedModel ----------------------------------------------

class FakeRestServer(object):
  """`POST /v1/models/NAME[/versions/V]:predict` answered by the SavedModel, loaded and run in
  the server thread, with TF Serving's row-format answer and `{"error": ...}` errors."""

  PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")

  def __init__(self, version_dir, model_name="student"):
    self.version_dir = version_dir
    self.model_name = model_name
    self.requests = []
    self.ready = threading.Event()
    self.error = None
    owner = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, answer = owner.answer(self.path, body)
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
    self.thread = threading.Thread(target=self._serve, daemon=True)
    self.thread.start()
    assert self.ready.wait(120), "fake server did not start"
    if self.error:
      raise self.error

  def _serve(self):
    try:
      import tensorflow as tf
      from bert import text_signature  # noqa: F401  (registers TensorFlow Text's ops)
      self.signatures = tf.saved_model.load(self.version_dir, tags=["serve"]).signatures
      self.signature = self.signatures["serving_default"]
    except Exception as e:  # reported by the constructor
      self.error = e
      self.ready.set()
      return
    self.ready.set()
    self.httpd.serve_forever(poll_interval=0.05)

  def answer(self, path, body):
    import tensorflow as tf
    match = self.PATH.match(path)
    if not match:
      return 404, {"error": "Malformed request: POST %s" % path}
    if match.group(1) != self.model_name:
      return 404, {"error": "Servable not found for request: Latest(%s)" % match.group(1)}
    try:
      request = json.loads(body)
      self.requests.append(request)
      name = request.get("signature_name", "serving_default")
      if name not in ("serving_default", "text"):
        return 400, {"error": "Serving signature name: \"%s\" not found in signature def" %
                              request["signature_name"]}
      instances = request["instances"]
      if name == "text":  # an omitted text_b is "" (the graph's default; a loaded signature
        inputs = {key: tf.constant([row.get(key, "") for row in instances], dtype=tf.string)
                  for key in ("text_a", "text_b")}  # takes every input)
      else:
        inputs = {key: tf.constant([row[key] for row in instances], dtype=tf.int32)
                  for key in ("input_ids", "input_mask", "segment_ids")}
      outputs = {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()]
                 for k, v in self.signatures[name](**inputs).items()}
    except Exception as e:
      return 400, {"error": "%s: %s" % (type(e).__name__, e)}
    rows = [{name: outputs[name][i] for name in outputs} for i in range(len(instances))]
    return 200, {"predictions": rows}

  def close(self):
    self.httpd.shutdown()
    self.httpd.server_close()
    self.thread.join(10)


@pytest.fixture(scope="module")
def rest_server(tiny_export):
  server = FakeRestServer(tiny_export.version_dir)
  yield server
  server.close()


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_client(args, stdin=None):
  """The client in-process: (exit code, stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  old_err, old_in = sys.stderr, sys.stdin
  sys.stderr = err
  if stdin is not None:
    sys.stdin = io.StringIO(stdin)
  try:
    code = client.run(args, stdout=out)
  finally:
    sys.stderr, sys.stdin = old_err, old_in
  return code, out.getvalue(), err.getvalue()


def _json_probabilities(output):
  return np.array([[record["probabilities"][label] for label in LABELS]
                   for record in map(json.loads, output.splitlines())])


# -- request building and parsing --------------------------------------------------------------

def test_load_export_settings(tiny_export):
  settings = client.load_export_settings(tiny_export.version_dir)
  assert settings["labels"] == LABELS
  assert settings["do_lower_case"] is True
  assert settings["max_seq_length"] == MAX_SEQ_LENGTH
  assert settings["vocab_file"] == os.path.join(tiny_export.version_dir, "assets", "vocab.txt")
  assert settings["pairs"] is False and settings["task_name"] == "emotion"
  assert client.resolve_version_dir(tiny_export.base_dir) == tiny_export.version_dir
  with open(settings["vocab_file"], encoding="utf-8") as f:
    assert f.read().split("\n")[:len(TOKENS)] == TOKENS


def test_encode_texts_and_rest_request(tiny_export):
  from bert import classifier_data, tokenization
  settings = client.load_export_settings(tiny_export.version_dir)
  tokenizer = tokenization.FullTokenizer(settings["vocab_file"], settings["do_lower_case"])
  batch = client.encode_texts(TEXTS, tokenizer, MAX_SEQ_LENGTH)

  expected_ids = []
  for text in TEXTS:
    tokens = ["[CLS]"] + tokenizer.tokenize(text)[:MAX_SEQ_LENGTH - 2] + ["[SEP]"]
    expected_ids.append(tokenizer.convert_tokens_to_ids(tokens))
  assert tokenizer.tokenize("Very GOOD food!") == ["very", "good", "food", "!"]
  assert tokenizer.tokenize("X") == ["[UNK]"]
  length = max(len(ids) for ids in expected_ids)
  assert length == MAX_SEQ_LENGTH  # the long text is truncated, the batch padded to it
  request = client.build_rest_request(batch, "serving_default")
  assert json.loads(json.dumps(request)) == request
  assert set(request) == {"signature_name", "instances"}
  assert request["signature_name"] == "serving_default"
  assert len(request["instances"]) == len(TEXTS)
  for ids, instance in zip(expected_ids, request["instances"]):
    pad = [0] * (length - len(ids))
    assert instance == {"input_ids": ids + pad, "input_mask": [1] * len(ids) + pad,
                        "segment_ids": [0] * length}
  for name in ("input_ids", "input_mask", "segment_ids"):
    assert batch[name].dtype == np.int32 and batch[name].shape == (len(TEXTS), length)
  assert batch["truncated"].tolist() == [False] * 5 + [True, False]

  # Same ids as the training features, text pairs included.
  pairs = [("味道很好", "送餐太慢"), ("很" * 12, "好" * 12), ("Good", "")]
  pair_batch = client.encode_texts(pairs, tokenizer, MAX_SEQ_LENGTH)
  label_map = {label: i for i, label in enumerate(LABELS)}
  for i, (a, b) in enumerate(pairs):
    feature = classifier_data.convert_single_example(
        classifier_data.InputExample("x", a, b or None, "0"), label_map, MAX_SEQ_LENGTH, tokenizer)
    n = len(feature.input_ids)
    assert pair_batch["input_ids"][i, :n].tolist() == feature.input_ids
    assert pair_batch["segment_ids"][i, :n].tolist() == feature.segment_ids
    assert pair_batch["input_mask"][i].tolist() == (
        [1] * n + [0] * (pair_batch["input_ids"].shape[1] - n))
    assert not pair_batch["input_ids"][i, n:].any()
  assert client.split_pair("a\tb\tc", True) == ("a", "b\tc")
  assert client.split_pair("a\tb", False) == "a\tb"


def test_grpc_request(tiny_export):
  pytest.importorskip("tensorflow_serving.apis.predict_pb2", reason=SERVING_API_MISSING)
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2
  batch = client.encode_texts(TEXTS[:3], client.make_tokenizer(
      client.load_export_settings(tiny_export.version_dir)), MAX_SEQ_LENGTH)
  request = client.build_grpc_request(batch, "student", "serving_default")
  assert isinstance(request, predict_pb2.PredictRequest)
  assert request.model_spec.name == "student"
  assert request.model_spec.signature_name == "serving_default"
  assert not request.model_spec.HasField("version")
  assert set(request.inputs) == {"input_ids", "input_mask", "segment_ids"}
  for name, proto in request.inputs.items():
    assert proto.dtype == tf.int32.as_datatype_enum
    assert [d.size for d in proto.tensor_shape.dim] == list(batch[name].shape)
    np.testing.assert_array_equal(tf.make_ndarray(proto), batch[name])
  versioned = client.build_grpc_request(batch, "student", "serving_default", version=7)
  assert versioned.model_spec.version.value == 7
  # What the server receives: the request survives serialization unchanged.
  assert predict_pb2.PredictRequest.FromString(request.SerializeToString()) == request


def test_parse_rest_response():
  answer = {"predictions": [{"probabilities": [0.25, 0.75], "label_ids": 1, "logits": [0., 1.]},
                            {"probabilities": [0.9, 0.1], "label_ids": 0, "logits": [1., 0.]}]}
  expected = [[0.25, 0.75], [0.9, 0.1]]
  np.testing.assert_allclose(client.parse_rest_response(answer), expected)
  np.testing.assert_allclose(client.parse_rest_response(json.dumps(answer)), expected)
  np.testing.assert_allclose(
      client.parse_rest_response({"outputs": {"probabilities": expected}}), expected)
  with pytest.raises(client.ServingError, match=r"^server error: Servable not found for request: "
                                                r"Latest\(nope\)$"):
    client.parse_rest_response('{"error": "Servable not found for request:\\n Latest(nope)"}')
  with pytest.raises(client.ServingError, match="no per-instance 'probabilities'"):
    client.parse_rest_response({"predictions": [[0.1, 0.9]]})
  with pytest.raises(client.ServingError, match="non-JSON"):
    client.parse_rest_response(b"<html>502 Bad Gateway</html>")


# -- end to end --------------------------------------------------------------------------------

def test_rest_end_to_end_matches_local(tiny_export, rest_server):
  code, out, err = _run_client(["--server", rest_server.url, "--export_dir", tiny_export.base_dir,
                                "--json", "--batch_size", "4", "--ids"] + TEXTS)
  assert code == 0, err
  assert "1 of 7 texts were longer than max_seq_length 20" in err
  records = [json.loads(line) for line in out.splitlines()]
  assert [r["text"] for r in records] == TEXTS
  rest = _json_probabilities(out)

  # Two requests of 4 and 3 rows, each exactly what build_rest_request gives for its texts.
  tokenizer = client.make_tokenizer(client.load_export_settings(tiny_export.version_dir))
  sent = rest_server.requests[-2:]
  assert [len(r["instances"]) for r in sent] == [4, 3]
  for request, texts in zip(sent, (TEXTS[:4], TEXTS[4:])):
    assert request == client.build_rest_request(
        client.encode_texts(texts, tokenizer, MAX_SEQ_LENGTH), "serving_default")
  assert len(sent[0]["instances"][0]["input_ids"]) < MAX_SEQ_LENGTH  # padded per batch

  local = np.concatenate([
      client.predict_local(tiny_export.version_dir,
                           client.encode_texts(texts, tokenizer, MAX_SEQ_LENGTH))
      for texts in (TEXTS[:4], TEXTS[4:])])
  np.testing.assert_allclose(rest, local, atol=1e-6)
  np.testing.assert_allclose(rest.sum(axis=1), 1.0, atol=1e-5)
  assert [r["label"] for r in records] == [LABELS[i] for i in local.argmax(axis=1)]

  # The --local path of the command line gives the same numbers.
  code, out, err = _run_client(["--local", "--export_dir", tiny_export.base_dir, "--json",
                                "--batch_size", "4"] + TEXTS)
  assert code == 0, err
  np.testing.assert_allclose(_json_probabilities(out), local, atol=1e-6)

  # Versioned URL, stdin input, the plain output format.
  code, out, err = _run_client(["--server", rest_server.url, "--export_dir", tiny_export.base_dir,
                                "--model_version", os.path.basename(tiny_export.version_dir)],
                               stdin="味道很好\n\n送餐太慢了\n")
  assert code == 0, err
  lines = out.split("\n")[:-1]
  assert len(lines) == 3  # one per input line: the blank one gets a row of nan, not scored
  assert lines[1] == "-\t%s\t" % " ".join("%s:nan" % name for name in LABELS)
  assert "1 of 3 texts are blank" in err
  del lines[1]
  for line, text, row in zip(lines, ["味道很好", "送餐太慢了"], local[:2]):
    label, scores, shown = line.split("\t")
    assert shown == text and label == LABELS[int(row.argmax())]
    assert scores == " ".join("%s:%.4f" % (name, p) for name, p in zip(LABELS, row))


def test_rest_errors_are_one_line(tiny_export, rest_server):
  code, out, err = _run_client(["--server", rest_server.url, "--model_name", "teacher",
                                "--export_dir", tiny_export.base_dir, "味道很好"])
  assert code == 1 and out == ""
  assert len(err.strip().splitlines()) == 1
  assert "server error (HTTP 404" in err
  assert "Servable not found for request: Latest(teacher)" in err

  code, _, err = _run_client(["--server", rest_server.url, "--signature_name", "nope",
                              "--export_dir", tiny_export.base_dir, "味道很好"])
  assert code == 1 and "HTTP 400" in err and "nope" in err

  closed = "http://127.0.0.1:%d" % _free_port()
  code, _, err = _run_client(["--server", closed, "--export_dir", tiny_export.base_dir, "好"])
  assert code == 1 and "cannot reach" in err and "serve.sh" in err
  assert len(err.strip().splitlines()) == 1

  code, _, err = _run_client(["--export_dir", os.path.join(tiny_export.root, "nowhere"), "好"])
  assert code == 1 and "nowhere: not found" in err


def test_client_script_from_repo_root(tiny_export, rest_server, tmp_path):
  """`python scripts/predict_client.py` over REST, as a user runs it (no TensorFlow import)."""
  input_file = tmp_path / "texts.txt"
  input_file.write_text("味道很好\n送餐太慢了\n", encoding="utf-8")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONIOENCODING="utf-8")
  env.pop("PYTHONPATH", None)
  result = subprocess.run(
      [sys.executable, "-X", "importtime", "scripts/predict_client.py", "--server",
       rest_server.url, "--export_dir", tiny_export.base_dir, "--input", str(input_file)],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
  stdout, stderr = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")
  assert result.returncode == 0, stderr[-2000:]
  lines = stdout.splitlines()
  assert len(lines) == 2
  for line, text in zip(lines, ["味道很好", "送餐太慢了"]):
    assert re.match(r"^[01]\t0:\d\.\d{4} 1:\d\.\d{4}\t%s$" % text, line), line
  assert not re.search(r"\|\s+tensorflow$", stderr, re.M), "the REST path imported TensorFlow"

  bad = subprocess.run([sys.executable, "scripts/predict_client.py", "--export_dir",
                        str(tmp_path), "好"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
  assert bad.returncode == 1
  assert bad.stderr.decode("utf-8").strip().startswith("predict_client.py: error: --export_dir")


def test_grpc_end_to_end(tiny_export):
  """--grpc against an in-process PredictionService running the SavedModel."""
  grpc = pytest.importorskip("grpc", reason=SERVING_API_MISSING)
  pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc",
                      reason=SERVING_API_MISSING)
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
  signature = load_signature(tiny_export.version_dir)
  received = []

  class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
      received.append(request)
      if request.model_spec.name != "student":
        context.abort(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(%s)" %
                      request.model_spec.name)
      for proto in request.inputs.values():
        if proto.dtype != tf.int32.as_datatype_enum:
          context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Expects arg to be int32")
      outputs = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
      response = predict_pb2.PredictResponse()
      for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
      return response

  server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
  port = server.add_insecure_port("127.0.0.1:0")
  server.start()
  try:
    target = "127.0.0.1:%d" % port
    code, out, err = _run_client(["--grpc", target, "--export_dir", tiny_export.base_dir, "--json",
                                  "--ids"] + TEXTS[:4])
    assert code == 0, err
    tokenizer = client.make_tokenizer(client.load_export_settings(tiny_export.version_dir))
    batch = client.encode_texts(TEXTS[:4], tokenizer, MAX_SEQ_LENGTH)
    assert received[-1] == client.build_grpc_request(batch, "student", "serving_default")
    np.testing.assert_allclose(_json_probabilities(out),
                               client.predict_local(tiny_export.version_dir, batch), atol=1e-6)
    code, _, err = _run_client(["--grpc", target, "--model_name", "x", "--export_dir",
                                tiny_export.base_dir, "--ids", "好"])
    assert code == 1 and "gRPC NOT_FOUND" in err and "Latest(x)" in err
  finally:
    server.stop(0)


def test_local_matches_training_graph(tiny_export):
  """The exported signature computes what the model_fn's PREDICT graph computes."""
  texts = TEXTS + ["很好吃", "太贵了不好", "热菜 fast"]
  training = tiny_export.training_graph_probabilities(texts)
  tokenizer = client.make_tokenizer(client.load_export_settings(tiny_export.version_dir))
  local = client.predict_local(tiny_export.version_dir,
                               client.encode_texts(texts, tokenizer, MAX_SEQ_LENGTH))
  assert local.shape == training.shape == (len(texts), len(LABELS))
  np.testing.assert_allclose(local, training, atol=1e-5)
  assert np.ptp(local[:, 1]) > 1e-3  # trained: not the same answer for every text


def test_warmup_requests_replay(tiny_export):
  pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2", reason=SERVING_API_MISSING)
  import tensorflow as tf
  from tensorflow_serving.apis import prediction_log_pb2
  path = os.path.join(tiny_export.version_dir, "assets.extra", "tf_serving_warmup_requests")
  assert os.path.isfile(path)
  signature = load_signature(tiny_export.version_dir)
  _, input_specs = signature.structured_input_signature
  assert {k: v.dtype for k, v in input_specs.items()} == {
      "input_ids": tf.int32, "input_mask": tf.int32, "segment_ids": tf.int32}
  count = 0
  for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(record)
    assert log.WhichOneof("log_type") == "predict_log"
    request = log.predict_log.request
    if request.model_spec.signature_name == "text":  # tests/test_text_signature.py replays these
      continue
    assert request.model_spec.signature_name == "serving_default"
    assert set(request.inputs) == set(input_specs)
    for proto in request.inputs.values():
      assert proto.dtype == tf.int32.as_datatype_enum
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    shape = inputs["input_ids"].shape
    assert 1 <= shape[1] <= MAX_SEQ_LENGTH
    probabilities = signature(**inputs)["probabilities"].numpy()
    assert probabilities.shape == (shape[0], len(LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    count += 1
  assert 1 <= count <= 1000


# -- serve.sh ----------------------------------------------------------------------------------

def _serve(args, env=None, cwd=None):
  full_env = dict(os.environ)
  for name in ("EXPORT_DIR", "MODEL_NAME", "REST_PORT", "GRPC_PORT", "ENABLE_BATCHING",
               "TF_SERVING_BIN", "SERVING_OUTPUT_DIR", "XLA", "TF_XLA_FLAGS", "INTRA_OP_THREADS"):
    full_env.pop(name, None)
  full_env.update(env or {})
  return subprocess.run(["bash", SERVE_SH] + list(args), env=full_env, cwd=cwd or REPO_ROOT,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=30)


def _batching_parameters_class():
  """TF Serving's BatchingParameters; tensorflow-serving-api does not ship its module, so else a
  message built with the same fields and numbers (session_bundle_config.proto)."""
  try:
    from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2
    return session_bundle_config_pb2.BatchingParameters
  except ImportError:
    pass
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  fields = descriptor_pb2.FieldDescriptorProto
  proto = descriptor_pb2.FileDescriptorProto(
      name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
      package="tensorflow.serving", syntax="proto3",
      dependency=["google/protobuf/wrappers.proto"])
  message = proto.message_type.add(name="BatchingParameters")
  for number, (name, wrapper) in enumerate(
      [("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
       ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
       ("thread_pool_name", "StringValue")], start=1):
    message.field.add(name=name, number=number, label=fields.LABEL_OPTIONAL,
                      type=fields.TYPE_MESSAGE, type_name=".google.protobuf." + wrapper)
  message.field.add(name="allowed_batch_sizes", number=6, label=fields.LABEL_REPEATED,
                    type=fields.TYPE_INT64)
  message.field.add(name="pad_variable_length_inputs", number=7, label=fields.LABEL_OPTIONAL,
                    type=fields.TYPE_BOOL)
  pool.Add(proto)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def _model_server_config(text):
  config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2",
                                   reason=SERVING_API_MISSING)
  from google.protobuf import text_format
  return text_format.Parse(text, config_pb2.ModelServerConfig())


def test_serve_dry_run_config(tiny_export, tmp_path):
  out_dir = tmp_path / "serving"
  result = _serve(["--dry-run", tiny_export.base_dir], env={"SERVING_OUTPUT_DIR": str(out_dir)})
  assert result.returncode == 0, result.stderr
  config_file = out_dir / "student.models.config"
  text = config_file.read_text()
  assert text in result.stdout
  config = _model_server_config(text)
  (model,) = config.model_config_list.config
  assert model.name == "student"
  assert model.base_path == os.path.abspath(tiny_export.base_dir)
  assert os.path.isabs(model.base_path)
  assert model.model_platform == "tensorflow"
  assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
  assert model.model_version_policy.latest.num_versions == 1
  command = result.stdout.split("# command:\n")[1].splitlines()[0].split()
  assert command[0] == "tensorflow_model_server"
  assert set(command[1:]) == {"--port=8500", "--rest_api_port=8501",
                              "--model_config_file=%s" % config_file} | _threads_flags(
                                  tiny_export.version_dir)
  assert not (out_dir / "student.batching.config").exists()

  # Relative base dir from another directory, other ports and name, batching on.
  relative = os.path.relpath(tiny_export.base_dir, str(tmp_path))
  result = _serve(["--dry-run", relative], cwd=str(tmp_path),
                  env={"SERVING_OUTPUT_DIR": str(out_dir), "MODEL_NAME": "tiny",
                       "REST_PORT": "9501", "GRPC_PORT": "9500", "ENABLE_BATCHING": "1",
                       "MAX_BATCH_SIZE": "16", "NUM_BATCH_THREADS": "3"})
  assert result.returncode == 0, result.stderr
  (model,) = _model_server_config(
      (out_dir / "tiny.models.config").read_text()).model_config_list.config
  assert (model.name, model.base_path) == ("tiny", os.path.abspath(tiny_export.base_dir))
  batching_file = out_dir / "tiny.batching.config"
  from google.protobuf import text_format
  batching = text_format.Parse(batching_file.read_text(), _batching_parameters_class()())
  assert batching.max_batch_size.value == 16
  assert batching.batch_timeout_micros.value > 0
  assert batching.num_batch_threads.value == 3
  assert batching.pad_variable_length_inputs is True
  command = result.stdout.split("# command:\n")[1].splitlines()[0].split()
  for flag in ("--port=9500", "--rest_api_port=9501", "--enable_batching=true",
               "--batching_parameters_file=%s" % batching_file):
    assert flag in command


def _threads_flags(version_dir):
  """The thread flags serve.sh adds for an export built for one thread per op."""
  from bert import export_layout
  if export_layout.read_export_info(version_dir)["serving_intra_op_threads"] != 1:
    return set()
  return {"--tensorflow_intra_op_parallelism=1",
          "--tensorflow_inter_op_parallelism=%d" % len(os.sched_getaffinity(0))}


@pytest.mark.parametrize("recorded", [1, 0, None])
def test_serve_gives_the_server_the_threads_the_export_records(tmp_path, recorded):
  """An export built for one thread per op (bert/serving_cpu.py) is served with
  --tensorflow_intra_op_parallelism=1 and an inter-op thread per CPU; INTRA_OP_THREADS or the
  caller's own thread flags after -- take its place; an older export (no record) gets none, and
  one built for another CPU count TensorFlow's default threads, with a warning."""
  version = tmp_path / "export" / "1700000000"
  (version / "assets.extra").mkdir(parents=True)
  (version / "saved_model.pb").write_bytes(b"")
  info = {"labels": ["0", "1"]}
  if recorded is not None:
    info["serving_intra_op_threads"] = recorded
  (version / "assets.extra" / "bert_export.json").write_text(json.dumps(info, indent=1))
  base, env = str(tmp_path / "export"), {"SERVING_OUTPUT_DIR": str(tmp_path / "serving")}

  def thread_flags(args=(), **extra):
    result = _serve(["--dry-run", base] + list(args), env=dict(env, **extra))
    assert result.returncode == 0, result.stderr
    command = result.stdout.split("# command:\n")[1].splitlines()[0].split()
    return [flag for flag in command if "parallelism" in flag]

  cpus = len(os.sched_getaffinity(0))
  assert thread_flags() == ([] if recorded != 1 else [
      "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=%d" % cpus])
  assert thread_flags(INTRA_OP_THREADS="0") == []
  assert thread_flags(INTRA_OP_THREADS="3") == [
      "--tensorflow_intra_op_parallelism=3", "--tensorflow_inter_op_parallelism=%d" % cpus]
  assert thread_flags(["--", "--tensorflow_session_parallelism=4"]) == [
      "--tensorflow_session_parallelism=4"]
  # Built for another CPU count: TensorFlow's default threads, and a warning that says so.
  info["serving_cpu"] = {"cores": cpus + 6, "l2_bytes": 2 ** 20}
  (version / "assets.extra" / "bert_export.json").write_text(json.dumps(info, indent=1))
  result = _serve(["--dry-run", base], env=env)
  assert result.returncode == 0, result.stderr
  assert "parallelism" not in result.stdout
  if recorded == 1:
    assert result.stderr.startswith("serve.sh: warning: the export was built for a %d-CPU server "
                                    "with one thread per op, this machine has %d CPUs" %
                                    (cpus + 6, cpus))
    assert len(result.stderr.splitlines()) == 1
  else:
    assert result.stderr == ""
  assert thread_flags(INTRA_OP_THREADS="1") == [
      "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=%d" % cpus]
  bad = _serve(["--dry-run", base], env=dict(env, INTRA_OP_THREADS="one"))
  assert bad.returncode == 1
  assert bad.stderr.strip() == ("serve.sh: error: INTRA_OP_THREADS=one: expected a "
                                "non-negative integer")


def test_serve_dry_run_xla(tiny_export, tmp_path):
  from bert import export_layout
  env = {"SERVING_OUTPUT_DIR": str(tmp_path), "XLA": "1"}
  result = _serve(["--dry-run", tiny_export.base_dir], env=env)
  assert result.returncode == 0, result.stderr
  assert "# environment: TF_XLA_FLAGS=%s\n" % export_layout.XLA_SERVING_FLAGS in result.stdout
  command = result.stdout.split("# command:\n")[1].splitlines()[0].split()
  assert "--xla_cpu_compilation_enabled=true" in command
  plain = _serve(["--dry-run", tiny_export.base_dir], env=dict(env, XLA="0"))
  assert "TF_XLA_FLAGS" not in plain.stdout and "--xla_cpu" not in plain.stdout
  bad = _serve(["--dry-run", tiny_export.base_dir], env=dict(env, XLA="yes"))
  assert bad.returncode == 1 and bad.stderr.strip() == "serve.sh: error: XLA=yes: expected 1 or 0"


# Runs serving_default of an export as a server process does, with the partition graphs TensorFlow
# executed: did XLA take the graph over (_XlaCompile/_XlaRun), and the probabilities.
_XLA_PROBE = """
import json, sys
import numpy as np
import tensorflow as tf
from bert.loaded_export import LoadedExport
loaded = LoadedExport(sys.argv[1])
inputs, outputs = loaded.inputs(), loaded.outputs()
ids = np.array(json.loads(sys.argv[2]), np.int32)
feed = {inputs["input_ids"]: ids, inputs["input_mask"]: (ids > 0).astype(np.int32),
        inputs["segment_ids"]: np.zeros_like(ids)}
options = tf.compat.v1.RunOptions(output_partition_graphs=True)
result = []
for _ in range(4):  # auto-clustering compiles lazily, after a cluster's first runs
  metadata = tf.compat.v1.RunMetadata()
  probabilities = loaded.session.run(outputs["probabilities"], feed, options=options,
                                     run_metadata=metadata)
  ops = sorted({node.op for graph in metadata.partition_graphs for node in graph.node})
  result.append({"probabilities": probabilities.tolist(), "xla": [op for op in ops if "Xla" in op]})
print(json.dumps(result))
"""


def test_xla_serving_matches_the_plain_graph(tiny_export):
  """With XLA_SERVING_FLAGS (serve.sh XLA=1) the served graph runs compiled, and its
  probabilities equal the plain graph's within 1e-5."""
  from bert import export_layout
  rng = np.random.RandomState(3)
  ids = rng.randint(5, len(TOKENS), size=(3, 12))
  ids[:, 0], ids[2, 7:] = 2, 0  # [CLS] first; padding in the last row
  runs = {}
  for name, flags in (("plain", None), ("xla", export_layout.XLA_SERVING_FLAGS)):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_XLA_FLAGS", None)
    if flags:
      env["TF_XLA_FLAGS"] = flags
    result = subprocess.run([sys.executable, "-c", _XLA_PROBE, tiny_export.version_dir,
                             json.dumps(ids.tolist())], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    runs[name] = json.loads(result.stdout.strip().splitlines()[-1])
  assert not any(run["xla"] for run in runs["plain"])
  assert runs["xla"][-1]["xla"], "XLA did not compile the served graph"
  plain = np.array(runs["plain"][-1]["probabilities"])
  assert plain.shape == (3, len(LABELS))
  for run in runs["xla"]:
    np.testing.assert_allclose(np.array(run["probabilities"]), plain, atol=1e-5)


def _fake_base(tmp_path, with_version=True):
  base = tmp_path / "export" / "student"
  (base / "not-a-version").mkdir(parents=True)
  (base / "not-a-version" / "saved_model.pb").write_bytes(b"")
  (base / "1700000000").mkdir()  # numeric, but no saved_model.pb (half-written)
  if with_version:
    (base / "1700000001").mkdir()
    (base / "1700000001" / "saved_model.pb").write_bytes(b"")
  return base


def test_serve_without_binary_says_what_to_install(tmp_path):
  base = _fake_base(tmp_path)
  env = {"SERVING_OUTPUT_DIR": str(tmp_path / "serving")}
  if shutil.which("tensorflow_model_server"):
    env["TF_SERVING_BIN"] = "tensorflow_model_server_not_installed"
  result = _serve([str(base)], env=env)
  assert result.returncode == 1
  assert result.stdout == ""
  assert "not found" in result.stderr.splitlines()[0]
  assert "tensorflow-model-server" in result.stderr
  assert "storage.googleapis.com/tensorflow-serving-apt" in result.stderr
  assert ("docker run -p 8501:8501 -p 8500:8500 -v %s:/models/student -e MODEL_NAME=student "
          "tensorflow/serving\n" % base) in result.stderr
  # An export meant for one thread per op: the docker command carries the server's thread flags.
  result = _serve([str(base)], env=dict(env, INTRA_OP_THREADS="1"))
  assert ("tensorflow/serving --tensorflow_intra_op_parallelism=1 "
          "--tensorflow_inter_op_parallelism=%d\n" % len(os.sched_getaffinity(0))) in result.stderr


def test_serve_errors(tmp_path):
  base = _fake_base(tmp_path, with_version=False)
  result = _serve([str(base)], env={"SERVING_OUTPUT_DIR": str(tmp_path / "serving")})
  assert result.returncode == 1 and result.stdout == ""
  assert len(result.stderr.strip().splitlines()) == 1
  assert "no numeric version directory with a saved_model.pb" in result.stderr

  result = _serve(["--dry-run", str(tmp_path / "missing")])
  assert result.returncode == 1
  assert "export base dir %s not found" % (tmp_path / "missing") in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1

  (base / "1700000000" / "saved_model.pb").write_bytes(b"")
  result = _serve(["--dry-run", str(base / "1700000000")])
  assert result.returncode == 1 and "is a version directory; give its parent" in result.stderr

  result = _serve(["--dry-run", str(base)], env={"REST_PORT": "http"})
  assert result.returncode == 1 and "REST_PORT=http" in result.stderr


# -- the text signature (raw strings; bert/text_signature.py) -----------------------------------

def test_client_sends_raw_text_by_default(tiny_export, rest_server):
  """REST: the raw texts go to the `text` signature; same numbers as the id path."""
  texts = TEXTS + ["", "\u200b\u3000"]
  code, out, err = _run_client(["--server", rest_server.url, "--export_dir", tiny_export.base_dir,
                                "--json", "--batch_size", "4"] + texts)
  assert code == 0, err
  sent = rest_server.requests[-3:]
  assert [r["signature_name"] for r in sent] == ["text"] * 3
  assert sent[0]["instances"] == [{"text_a": text} for text in texts[:4]]
  assert "1 of 9 texts were longer than max_seq_length 20" in err
  assert "2 of 9 texts are blank" in err
  records = [json.loads(line) for line in out.splitlines()]
  assert [r.get("blank", False) for r in records] == [False] * 7 + [True, True]
  tokenizer = client.make_tokenizer(client.load_export_settings(tiny_export.version_dir))
  ids = np.concatenate([client.predict_local(tiny_export.version_dir,
                                             client.encode_texts(chunk, tokenizer, MAX_SEQ_LENGTH))
                        for chunk in (TEXTS[:4], TEXTS[4:])])
  np.testing.assert_allclose(_json_probabilities("\n".join(out.splitlines()[:7])), ids, atol=1e-5)

  pairs = ["味道很好\t送餐太慢", "Good"]
  code, out, err = _run_client(["--server", rest_server.url, "--export_dir", tiny_export.base_dir,
                                "--json", "--pairs"] + pairs)
  assert code == 0, err
  assert rest_server.requests[-1]["instances"] == [{"text_a": "味道很好", "text_b": "送餐太慢"},
                                                   {"text_a": "Good", "text_b": ""}]
  batch = client.encode_texts([("味道很好", "送餐太慢"), "Good"], tokenizer, MAX_SEQ_LENGTH)
  np.testing.assert_allclose(_json_probabilities(out),
                             client.predict_local(tiny_export.version_dir, batch), atol=1e-5)


def test_text_grpc_request(tiny_export):
  pytest.importorskip("tensorflow_serving.apis.predict_pb2", reason=SERVING_API_MISSING)
  import tensorflow as tf
  request = client.build_grpc_request(client.text_batch(["味道很好", ("a", "b")]), "student",
                                      "text")
  assert request.model_spec.signature_name == "text"
  assert set(request.inputs) == {"text_a", "text_b"}
  assert request.inputs["text_a"].dtype == tf.string.as_datatype_enum
  assert tf.make_ndarray(request.inputs["text_b"]).tolist() == [b"", b"b"]
  outputs = client.local_outputs(tiny_export.version_dir, client.text_batch(["味道很好", ""]),
                                 "text")
  assert outputs["num_tokens"].tolist() == [4, 0]
  assert outputs["probabilities"].shape == (2, 2)


# -- bert.loaded_export: the toolkit's one SavedModel loader -----------------------------------

def test_loaded_export_runs_both_signatures_like_tf2s_loader(tiny_export):
  from bert.loaded_export import LoadedExport
  loaded = LoadedExport(tiny_export.base_dir)  # a base dir: its newest version
  try:
    assert loaded.version_dir == tiny_export.version_dir and loaded.labels == LABELS
    tokenizer = client.make_tokenizer(client.load_export_settings(tiny_export.version_dir))
    batch = client.encode_texts(TEXTS[:3], tokenizer, MAX_SEQ_LENGTH)
    feed = dict(client.model_inputs(batch), label_ids=[0, 1, 0])  # extra keys are left out
    ours = loaded.run(feed)["probabilities"]
    import tensorflow as tf
    oracle = load_signature(tiny_export.version_dir)(
        **{k: tf.constant(v) for k, v in client.model_inputs(batch).items()})
    np.testing.assert_allclose(ours, oracle["probabilities"].numpy(), atol=1e-6)
    if "text" in loaded.signatures:
      text = loaded.run({"text_a": np.array(TEXTS[:3], dtype=object),
                         "text_b": np.array([""] * 3, dtype=object)}, signature="text")
      np.testing.assert_allclose(text["probabilities"], ours, atol=1e-6)
    with pytest.raises(UsageError, match=r"^--export_dir .*: no signature 'nope' \(has "):
      loaded.run(feed, signature="nope")
  finally:
    loaded.close()


def test_loaded_export_names_a_damaged_export(tiny_export, tmp_path):
  from bert.loaded_export import LoadedExport
  broken = tmp_path / "student" / "1"
  shutil.copytree(tiny_export.version_dir, str(broken))
  data = next((broken / "variables").glob("variables.data-*"))
  data.write_bytes(data.read_bytes()[:100])
  with pytest.raises(UsageError) as raised:
    LoadedExport(str(broken), flag="--teacher_model")
  message = str(raised.value)
  assert message.startswith("--teacher_model %s: cannot be loaded (" % broken)
  assert "export the teacher again" in message and "\n" not in message
