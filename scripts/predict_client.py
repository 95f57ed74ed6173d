#!/usr/bin/env python3
"""Classify raw text with an exported student: over REST, over gRPC, or in-process.

By default the raw texts go to the export's `text` signature, which tokenizes them in the
graph with the export's own vocab (bert/text_signature.py); the export's settings
(assets.extra/bert_export.json) give the label names. With --ids (or an export that has no text
signature) texts are tokenized here instead, with the export's vocabulary (assets/vocab.txt) and
settings, exactly as in training: [CLS] a [SEP] (b [SEP]), truncated to max_seq_length, each
batch padded to its own longest text, and sent to `serving_default`.

  python scripts/predict_client.py "味道很好" "送餐太慢"                  # REST, localhost:8501
  python scripts/predict_client.py --input texts.txt --json
  echo "味道很好" | python scripts/predict_client.py --grpc localhost:8500
  python scripts/predict_client.py --local --export_dir export/student "味道很好"

Output, one line per text: `label<TAB>0:0.0312 1:0.9688<TAB>text` (or JSON lines with --json).
Sentence-pair tasks (mrpc, mnli, xnli; --pairs for a csv task with a second column) take
`text_a<TAB>text_b` lines.

The REST path needs only the standard library and numpy (TensorFlow is not imported);
--grpc needs tensorflow-serving-api; --local runs the SavedModel with TensorFlow.
"""

import argparse
import json
import os
import sys
import unicodedata
import urllib.error
import urllib.request

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

if __name__ == "__main__":  # before TensorFlow loads (BERT_VERBOSE=1 keeps its notices)
  from bert import quiet  # noqa: E402
  quiet.configure()
from bert import export_layout, features, tokenization  # noqa: E402  (no TensorFlow import)
from bert.errors import UsageError  # noqa: E402

SIGNATURE_NAME = export_layout.SIGNATURE_KEY
TEXT_SIGNATURE_NAME = "text"  # bert/text_signature.py's TEXT_SIGNATURE_KEY (no TF import here)
INPUT_NAMES = features.INPUT_NAMES
PAIR_TASKS = frozenset(["mrpc", "mnli", "xnli"])


class ServingError(RuntimeError):
  """The server answered with an error, or could not be reached."""


# -- the export ------------------------------------------------------------------------------


def resolve_version_dir(path):
  """A version directory for a version dir or an export base dir (its newest numeric version)."""
  return export_layout.resolve_version_dir(path, flag="--export_dir")


def load_export_settings(version_dir):
  """What the client needs from an export: labels, vocab_file, do_lower_case, max_seq_length,
  version, task_name and pairs (whether the task takes text pairs)."""
  info = export_layout.read_export_info(version_dir, flag="--export_dir")
  info_path = os.path.join(version_dir, "assets.extra", export_layout.INFO_FILE)
  vocab_file = info["vocab_file"]
  if not os.path.isfile(vocab_file):
    raise UsageError("--export_dir %s: no assets/vocab.txt" % version_dir)
  missing = [k for k in ("labels", "do_lower_case", "max_seq_length") if k not in info]
  if missing:
    raise UsageError("%s: missing %s" % (info_path, ", ".join(missing)))
  task_name = info.get("task_name")
  version = os.path.basename(os.path.normpath(version_dir))
  return {
      "labels": [str(label) for label in info["labels"]],
      "do_lower_case": bool(info["do_lower_case"]),
      "max_seq_length": int(info["max_seq_length"]),
      "vocab_file": vocab_file,
      "task_name": task_name,
      "pairs": bool(info.get("text_b_column")) or (task_name or "").lower() in PAIR_TASKS,
      "version": int(version) if version.isdigit() else None,
      "text_signature": bool(info.get("text_signature")),
      "version_dir": version_dir
  }


def make_tokenizer(settings):
  tokenizer = tokenization.FullTokenizer(settings["vocab_file"], settings["do_lower_case"])
  for token in ("[CLS]", "[SEP]", "[UNK]"):
    if token not in tokenizer.vocab:
      raise UsageError("%s: has no %s token" % (settings["vocab_file"], token))
  return tokenizer


# -- encoding --------------------------------------------------------------------------------


def split_pair(line, pairs):
  """`a<TAB>b` → (a, b) when the task takes pairs; else the line as one text."""
  if pairs and "\t" in line:
    text_a, text_b = line.split("\t", 1)
    return text_a, text_b
  return line


def encode_one(text, tokenizer, max_seq_length):
  """The features of one text or (text_a, text_b), exactly as in training."""
  text_a, text_b = text if isinstance(text, (tuple, list)) else (text, None)
  return features.convert_single_example(features.InputExample("client", text_a, text_b), {},
                                         max_seq_length, tokenizer)


def encode_texts(texts, tokenizer, max_seq_length):
  """Texts (strings, or (text_a, text_b) pairs) → {input_ids, input_mask, segment_ids}: int32
  arrays [len(texts), longest], zero-padded, the mask 1 over the real tokens.

  The returned dict also has "truncated": a bool array of the texts cut to max_seq_length.
  """
  if not texts:
    raise UsageError("no text to encode")
  rows = [encode_one(text, tokenizer, max_seq_length) for text in texts]
  batch = features.pad_features(rows)
  batch["truncated"] = np.array([row.truncated for row in rows], dtype=bool)
  return batch


def model_inputs(batch):
  return {name: np.asarray(batch[name], dtype=np.int32) for name in INPUT_NAMES}


def text_batch(texts):
  """Texts (strings, or (text_a, text_b) pairs) → the text signature's inputs: {"text_a": [str]},
  plus "text_b" ("" for a single text) when any is a pair."""
  pairs = [text if isinstance(text, (tuple, list)) else (text, "") for text in texts]
  batch = {"text_a": [a for a, _ in pairs]}
  if any(b for _, b in pairs):
    batch["text_b"] = [b for _, b in pairs]
  return batch


def is_text_batch(batch):
  return "text_a" in batch


# -- REST ------------------------------------------------------------------------------------


def build_rest_request(batch, signature_name=SIGNATURE_NAME):
  """The JSON body of a row-format :predict request (all rows share the batch's padded length);
  for a text batch (text_batch): {"signature_name": "text", "instances": [{"text_a": ...}]}."""
  if is_text_batch(batch):
    names = [name for name in ("text_a", "text_b") if name in batch]
    return {"signature_name": signature_name,
            "instances": [{name: batch[name][i] for name in names}
                          for i in range(len(batch["text_a"]))]}
  inputs = model_inputs(batch)
  size = len(inputs["input_ids"])
  instances = [{name: inputs[name][i].tolist() for name in INPUT_NAMES} for i in range(size)]
  return {"signature_name": signature_name, "instances": instances}


def rest_url(server, model_name, version=None):
  server = server.rstrip("/")
  if "://" not in server:
    server = "http://" + server
  path = "/v1/models/%s" % model_name
  if version:
    path += "/versions/%s" % version
  return server + path + ":predict"


def _error_text(response):
  if isinstance(response, dict) and "error" in response:
    return " ".join(str(response["error"]).split())
  return None


def parse_rest_response(response):
  """Probabilities [batch, num_labels] from a :predict answer (a dict or its JSON text).

  Raises ServingError with the server's message for `{"error": ...}`.
  """
  return parse_rest_outputs(response)["probabilities"]


def parse_rest_outputs(response):
  """{"probabilities": [batch, num_labels]} from a :predict answer, plus the text signature's
  "num_tokens" and "truncated" [batch] when it has them."""
  if isinstance(response, (bytes, str)):
    try:
      response = json.loads(response)
    except ValueError:
      text = response.decode("utf-8", "replace") if isinstance(response, bytes) else response
      raise ServingError("server answered with non-JSON: %r" % text[:200])
  error = _error_text(response)
  if error is not None:
    raise ServingError("server error: %s" % error)
  if isinstance(response, dict) and "predictions" in response:
    predictions = response["predictions"]
    if not isinstance(predictions, list) or not all(
        isinstance(p, dict) and "probabilities" in p for p in predictions):
      raise ServingError("answer has no per-instance 'probabilities' (is the signature this "
                         "toolkit's serving_default?)")
    probabilities = [p["probabilities"] for p in predictions]
    extra = {name: [p[name] for p in predictions] for name in ("num_tokens", "truncated")
             if all(name in p for p in predictions)}
  elif isinstance(response, dict) and isinstance(response.get("outputs"), dict) \
          and "probabilities" in response["outputs"]:
    probabilities = response["outputs"]["probabilities"]  # columnar answer
    extra = {name: response["outputs"][name] for name in ("num_tokens", "truncated")
             if name in response["outputs"]}
  else:
    raise ServingError("answer has neither 'predictions' nor 'outputs': %s" %
                       json.dumps(response)[:200])
  array = np.asarray(probabilities, dtype=np.float64)
  if array.ndim != 2:
    raise ServingError("probabilities have shape %s, expected [batch, num_labels]" %
                       (list(array.shape),))
  outputs = {name: np.asarray(value) for name, value in extra.items()}
  outputs["probabilities"] = array
  return outputs


def predict_rest(server,
                 model_name,
                 batch,
                 version=None,
                 signature_name=SIGNATURE_NAME,
                 timeout=30.0):
  """Probabilities [batch, num_labels] from the REST endpoint (see rest_outputs)."""
  return rest_outputs(server, model_name, batch, version, signature_name,
                      timeout)["probabilities"]


def rest_outputs(server, model_name, batch, version=None, signature_name=SIGNATURE_NAME,
                 timeout=30.0):
  """parse_rest_outputs of the :predict answer to batch (ids, or a text_batch)."""
  url = rest_url(server, model_name, version)
  body = json.dumps(build_rest_request(batch, signature_name)).encode("utf-8")
  request = urllib.request.Request(url,
                                   data=body,
                                   method="POST",
                                   headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as answer:
      payload = answer.read()
  except urllib.error.HTTPError as e:
    payload = e.read()
    try:
      message = _error_text(json.loads(payload))
    except ValueError:
      message = None
    message = message or " ".join(payload.decode("utf-8", "replace").split())[:200] or e.reason
    raise ServingError("server error (HTTP %d from %s): %s" % (e.code, url, message))
  except urllib.error.URLError as e:
    raise ServingError("cannot reach %s (%s); is the server running? start it with "
                       "bash scripts/serve.sh" % (url, getattr(e, "reason", e)))
  except OSError as e:  # timeouts, resets
    raise ServingError("request to %s failed (%s)" % (url, e))
  return parse_rest_outputs(payload)


# -- gRPC ------------------------------------------------------------------------------------


def _serving_apis():
  try:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
  except ImportError as e:
    raise UsageError("--grpc: needs the tensorflow-serving-api package (pip install "
                     "tensorflow-serving-api, the version of your TensorFlow) (%s)" % e)
  return tf, predict_pb2


def build_grpc_request(batch, model_name, signature_name=SIGNATURE_NAME, version=None):
  """A tensorflow.serving PredictRequest with int32 TensorProtos for the batch (string ones for a
  text_batch)."""
  tf, predict_pb2 = _serving_apis()
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version:
    request.model_spec.version.value = int(version)
  if is_text_batch(batch):
    for name in ("text_a", "text_b"):
      if name in batch:
        request.inputs[name].CopyFrom(tf.make_tensor_proto(
            [text.encode("utf-8") for text in batch[name]], dtype=tf.string))
    return request
  for name, value in model_inputs(batch).items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=tf.int32))
  return request


def predict_grpc(target,
                 model_name,
                 batch,
                 version=None,
                 signature_name=SIGNATURE_NAME,
                 timeout=30.0):
  """Probabilities [batch, num_labels] from the gRPC endpoint (see grpc_outputs)."""
  return grpc_outputs(target, model_name, batch, version, signature_name,
                      timeout)["probabilities"]


def grpc_outputs(target, model_name, batch, version=None, signature_name=SIGNATURE_NAME,
                 timeout=30.0):
  """{"probabilities": [batch, num_labels]}, plus "num_tokens" and "truncated" [batch] when the
  signature answers them."""
  tf, _ = _serving_apis()
  try:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
  except ImportError as e:
    raise UsageError("--grpc: needs grpcio and tensorflow-serving-api (%s)" % e)
  request = build_grpc_request(batch, model_name, signature_name, version)
  with grpc.insecure_channel(target) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as e:
      code = e.code().name if hasattr(e, "code") and e.code() else "ERROR"
      details = " ".join(str(e.details() if hasattr(e, "details") else e).split())
      if code == "UNAVAILABLE":
        raise ServingError("cannot reach %s (%s); is the server running? start it with "
                           "bash scripts/serve.sh" % (target, details))
      raise ServingError("server error (gRPC %s from %s): %s" % (code, target, details))
  if "probabilities" not in response.outputs:
    raise ServingError("answer has no 'probabilities' output (outputs: %s)" %
                       ", ".join(sorted(response.outputs)))
  outputs = {name: tf.make_ndarray(response.outputs[name]) for name in ("num_tokens", "truncated")
             if name in response.outputs}
  outputs["probabilities"] = np.asarray(tf.make_ndarray(response.outputs["probabilities"]),
                                        dtype=np.float64)
  return outputs


# -- in-process ------------------------------------------------------------------------------

_LOADED = {}


def load_export(version_dir):
  """The export loaded in this process (once), through bert.loaded_export like every loader."""
  key = os.path.abspath(version_dir)
  if key not in _LOADED:
    from bert.loaded_export import LoadedExport  # imports TensorFlow: the local mode only
    _LOADED[key] = LoadedExport(version_dir, flag="--export_dir")
  return _LOADED[key]


def predict_local(version_dir, batch, signature_name=SIGNATURE_NAME):
  """Probabilities [batch, num_labels] from the SavedModel run in this process."""
  return local_outputs(version_dir, batch, signature_name)["probabilities"]


def local_outputs(version_dir, batch, signature_name=SIGNATURE_NAME):
  """{"probabilities": [batch, num_labels]} (plus the text signature's "num_tokens" and
  "truncated" [batch]) from the SavedModel run in this process."""
  loaded = load_export(version_dir)
  if is_text_batch(batch):  # text_b "" is a single text
    feed = {"text_a": np.asarray(batch["text_a"], dtype=object),
            "text_b": np.asarray(batch.get("text_b", [""] * len(batch["text_a"])), dtype=object)}
  else:
    feed = model_inputs(batch)
  outputs = loaded.run(feed, signature=signature_name)
  result = {name: outputs[name] for name in ("num_tokens", "truncated") if name in outputs}
  result["probabilities"] = np.asarray(outputs["probabilities"], dtype=np.float64)
  return result


# -- command line ----------------------------------------------------------------------------


def split_lines(data):
  """Lines split on \\n (and \\r\\n) only: form feeds, \\x1c-\\x1e, \\x85, U+2028/2029 stay in their
  line (str.splitlines would split there, and the output lines would no longer match the input's).
  A final line break ends the last line; it does not start an empty one."""
  lines = data.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_texts(args):
  """The input texts, one per input line or argument, blank ones included (see is_blank)."""
  if args.texts and args.input:
    raise UsageError("give texts as arguments or with --input, not both")
  if args.texts:
    lines = list(args.texts)
  elif args.input:
    if not os.path.isfile(args.input):
      raise UsageError("--input %s: not found" % args.input)
    try:
      with open(args.input, encoding="utf-8-sig", newline="") as f:
        lines = split_lines(f.read())
    except UnicodeDecodeError as e:
      raise UsageError("--input %s: not valid UTF-8 (byte %d)" % (args.input, e.start))
  else:
    if sys.stdin.isatty():
      print("reading texts from stdin, one per line (Ctrl-D to end)", file=sys.stderr)
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(data, bytes):
      try:
        data = data.decode("utf-8-sig")
      except UnicodeDecodeError as e:
        raise UsageError("stdin: not valid UTF-8 (byte %d)" % e.start)
    lines = split_lines(data)
  if not lines:
    raise UsageError("no input text (give texts as arguments, --input FILE, or lines on stdin)")
  return lines


def is_blank(text, tokenizer):
  """Whether nothing of the text is left for the model (whitespace or control characters only):
  such a text is not scored; its output row has label - and nan probabilities."""
  parts = text if isinstance(text, tuple) else (text,)
  return not any(part and tokenizer.tokenize(part) for part in parts)


def shown_text(text):
  """The text as shown in a plain output line: control characters (but tab) as \\xNN, so that
  each output line stays one line."""
  return "".join(c if c == "\t" or unicodedata.category(c) != "Cc" and c not in "\u2028\u2029"
                 else "\\x%02x" % ord(c) if ord(c) < 256 else "\\u%04x" % ord(c) for c in text)


def format_line(label, probabilities, labels, text):
  shown = shown_text("\t".join(text) if isinstance(text, tuple) else text)
  scores = " ".join("%s:%.4f" % (name, p) for name, p in zip(labels, probabilities))
  return "%s\t%s\t%s" % (label, scores, shown)


def format_json(label, probabilities, labels, text):
  record = {
      "label": label,
      "probabilities": {
          name: float(p) for name, p in zip(labels, probabilities)
      } if probabilities is not None else None
  }
  if probabilities is None:
    record["label"], record["blank"] = None, True
  if isinstance(text, tuple):
    record["text_a"], record["text_b"] = text
  else:
    record["text"] = text
  return json.dumps(record, ensure_ascii=False)


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="Texts come from the arguments, --input FILE, or stdin (one per line).")
  parser.add_argument("texts", nargs="*", help="texts to classify")
  parser.add_argument("--input", help="UTF-8 file with one text per line")
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--server",
                    default=None,
                    help="REST endpoint of tensorflow_model_server (default http://localhost:8501)")
  mode.add_argument("--grpc", metavar="HOST:PORT", help="query the gRPC endpoint instead")
  mode.add_argument("--local",
                    action="store_true",
                    help="run the SavedModel in this process (no server)")
  parser.add_argument("--export_dir",
                      default=os.environ.get("EXPORT_DIR", "export/student"),
                      help="the export (base dir: newest version; or a version dir) whose vocab "
                      "and settings encode the texts (default $EXPORT_DIR or export/student)")
  parser.add_argument("--model_name", default=os.environ.get("MODEL_NAME", "student"))
  parser.add_argument("--model_version",
                      type=int,
                      default=None,
                      help="ask the server for this version (default: the one it serves); "
                      "also picks that version's vocab under --export_dir")
  parser.add_argument("--ids", action="store_true",
                      help="tokenize here and send token ids to serving_default (default: send "
                      "the raw texts to the export's text signature, when it has one)")
  parser.add_argument("--signature_name", default=None,
                      help="default: text (raw texts), or serving_default with --ids or for an "
                      "export without the text signature")
  parser.add_argument("--batch_size", type=int, default=32, help="texts per request")
  parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
  pairs = parser.add_mutually_exclusive_group()
  pairs.add_argument("--pairs",
                     dest="pairs",
                     action="store_true",
                     default=None,
                     help="split lines on the first tab into text_a and text_b")
  pairs.add_argument("--no_pairs",
                     dest="pairs",
                     action="store_false",
                     help="never split lines on tabs")
  parser.add_argument("--json", action="store_true", help="one JSON object per line")
  return parser.parse_args(argv)


def main(argv=None, stdout=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  stdout = stdout or sys.stdout
  if args.batch_size <= 0:
    raise UsageError("--batch_size: must be > 0, got %d" % args.batch_size)
  export_dir = args.export_dir
  if not os.path.exists(export_dir) and not os.path.isabs(export_dir) \
          and os.path.exists(os.path.join(REPO_ROOT, export_dir)):
    export_dir = os.path.join(REPO_ROOT, export_dir)
  if args.model_version is not None and not os.path.isfile(
      os.path.join(export_dir, "saved_model.pb")):
    export_dir = os.path.join(export_dir, str(args.model_version))
  version_dir = resolve_version_dir(export_dir)
  settings = load_export_settings(version_dir)
  use_text = settings["text_signature"] and not args.ids
  tokenizer = None if use_text else make_tokenizer(settings)
  signature_name = args.signature_name or (TEXT_SIGNATURE_NAME if use_text else SIGNATURE_NAME)
  labels = settings["labels"]
  use_pairs = settings["pairs"] if args.pairs is None else args.pairs
  texts = [split_pair(line, use_pairs) for line in read_texts(args)]

  if args.local:
    predict = lambda batch: local_outputs(version_dir, batch, signature_name)  # noqa
  elif args.grpc:
    predict = lambda batch: grpc_outputs(
        args.grpc,
        args.model_name,
        batch,  # noqa
        args.model_version,
        signature_name,
        args.timeout)
  else:
    server = args.server or "http://localhost:8501"
    predict = lambda batch: rest_outputs(
        server,
        args.model_name,
        batch,  # noqa
        args.model_version,
        signature_name,
        args.timeout)

  truncated = 0
  formatter = format_json if args.json else format_line
  # Blank: nothing left for the model. The text signature says so itself (num_tokens 0).
  blank = [False if use_text else is_blank(text, tokenizer) for text in texts]
  for start in range(0, len(texts), args.batch_size):
    chunk = texts[start:start + args.batch_size]
    scored = [text for text, empty in zip(chunk, blank[start:start + args.batch_size])
              if not empty]
    rows = iter([])
    if scored:
      if use_text:
        outputs = predict(text_batch(scored))
        if "num_tokens" in outputs:
          for offset, count in enumerate(np.asarray(outputs["num_tokens"]).reshape(-1)):
            blank[start + offset] = int(count) == 0  # nothing is dropped in text mode
        truncated += int(np.asarray(outputs.get("truncated", [])).astype(bool).sum())
      else:
        batch = encode_texts(scored, tokenizer, settings["max_seq_length"])
        truncated += int(batch["truncated"].sum())
        outputs = predict(batch)
      probabilities = outputs["probabilities"]
      if probabilities.shape != (len(scored), len(labels)):
        raise ServingError(
            "the model answered probabilities of shape %s for %d texts and %d labels (%s); "
            "is the server serving this export?" %
            (list(probabilities.shape), len(scored), len(labels), version_dir))
      rows = iter(probabilities)
    for text, empty in zip(chunk, blank[start:start + args.batch_size]):
      if empty:  # one output line per input line: a defined row, not a dropped or scored one
        if use_text:
          next(rows)  # scored by the text signature (as [CLS] [SEP]); not shown
        stdout.write(formatter("-", None if args.json else [float("nan")] * len(labels), labels,
                               text) + "\n")
        continue
      row = next(rows)
      label = labels[int(np.argmax(row))]
      stdout.write(formatter(label, row, labels, text) + "\n")
    stdout.flush()
  if any(blank):
    numbers = [str(i + 1) for i, empty in enumerate(blank) if empty]
    print("note: %d of %d texts are blank (whitespace or control characters only) and were not "
          "scored: their rows have label - and no probabilities (text %s)" %
          (len(numbers), len(texts), ", ".join(numbers[:10] + ["..."] * (len(numbers) > 10))),
          file=sys.stderr)
  if truncated:
    print("note: %d of %d texts were longer than max_seq_length %d tokens and were truncated" %
          (truncated, len(texts), settings["max_seq_length"]),
          file=sys.stderr)
  return 0


def run(argv=None, stdout=None):
  """main() with one-line errors on stderr (exit 1) instead of tracebacks."""
  try:
    return main(argv, stdout)
  except KeyboardInterrupt:
    print("predict_client.py: error: interrupted", file=sys.stderr)
    return 130
  except (UsageError, ServingError, ValueError, OSError) as e:
    message = " ".join(str(e).split()) or type(e).__name__
    print("predict_client.py: error: %s" % message, file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(run())
