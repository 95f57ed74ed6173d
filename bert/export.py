"""SavedModel export for tensorflow_model_server, and reading an export's recorded settings.

Layout: `export_dir/<unix time>/{saved_model.pb, variables/, assets/vocab.txt, assets.extra/}`.
Each version is written under a temporary name and renamed into place, so a server watching
export_dir never loads a half-written version.
"""

import json
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from bert import classifier, modeling, text_signature
from bert.errors import UsageError, one_line_message
from bert.export_layout import (INFO_FILE, INPUT_NAMES, SERVE_TAG, SIGNATURE_KEY,  # noqa: F401
                                TEMP_PREFIX, WARMUP_FILE, numeric_versions, read_export_info,
                                resolve_version_dir)
from bert.processes import process_alive
from bert.training import check_shapes_match, log

tf1 = tf.compat.v1

def check_writable(export_dir):
  """Fails early, before any training, when export_dir cannot be written."""
  try:
    tf.io.gfile.makedirs(export_dir)
    probe = os.path.join(export_dir, ".write-test-%d" % os.getpid())
    with open(probe, "w") as f:
      f.write("")
    os.remove(probe)
  except (OSError, tf.errors.OpError) as e:  # gfile raises OpError (e.g. a parent is a file)
    reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
    raise UsageError("--export_dir %s: not writable (%s); expected a directory this process "
                     "can create files in" % (export_dir, " ".join(str(reason).split())))


def build_serving_graph(bert_config, num_labels, temperature=1.0, row_blocks=True):
  """Placeholders and outputs of the serving signature in the current graph.

  row_blocks: see modeling.BertModel.

  Returns:
    inputs: {name: int32 placeholder [batch_size, seq_length]};
    outputs: probabilities [batch_size, num_labels] = softmax(logits), logits (divided by the
    training temperature), label_ids int32 [batch_size].
  """
  inputs = {name: tf1.placeholder(tf.int32, [None, None], name=name) for name in INPUT_NAMES}
  logits, _ = classifier.classifier_logits(bert_config, False, inputs["input_ids"],
                                           inputs["input_mask"], inputs["segment_ids"], num_labels,
                                           row_blocks=row_blocks)
  logits = tf.identity(logits / temperature, name="logits")
  outputs = {"logits": logits,
             "probabilities": tf.nn.softmax(logits, axis=-1, name="probabilities"),
             "label_ids": tf.argmax(logits, axis=-1, output_type=tf.int32, name="label_ids")}
  return inputs, outputs


# Key of bert_export.json that names the encoder's inner tensors (see intermediate_tensor_names).
INTERMEDIATE_KEY = "intermediate_tensors"


def intermediate_tensor_names(model):
  """Names of the inner tensors a distilled student can be matched to, in model's graph.

  They are tensors the serving graph already holds (no op is added for them: the serving path and
  its cost stay the same), recorded in bert_export.json so that a student reaches them in the
  frozen teacher (distillation.Teacher) after freezing.

  Returns:
    {"embedding": [batch, seq, hidden], "hidden": one [batch, seq, hidden] per layer,
     "attention_scores", "attention_probs": one [batch, heads, seq, seq] per layer (scores are the
     softmax's input, MASK_ADDER at padded keys), "pooled": [batch, hidden]}: tensor names.
  """
  return {"embedding": model.get_embedding_output().name,
          "hidden": [t.name for t in model.get_all_encoder_layers()],
          "attention_scores": [t.name for t in model.get_all_attention_scores()],
          "attention_probs": [t.name for t in model.get_all_attention_probs()],
          "pooled": model.get_pooled_output().name}


def export_saved_model(export_dir, *args, **kwargs):
  """Exports the classifier (see _export_saved_model); a failed write (a full disk) is one line
  naming export_dir, and what this export had written there is removed."""
  try:
    return _export_saved_model(export_dir, *args, **kwargs)
  except (tf.errors.OpError, OSError) as e:
    for name in os.listdir(export_dir) if os.path.isdir(export_dir) else []:
      if name.startswith(TEMP_PREFIX) and name.endswith("-%d" % os.getpid()):
        shutil.rmtree(os.path.join(export_dir, name), ignore_errors=True)
    cause = one_line_message(e).split(" Hint: ")[0]  # TF's out-of-memory hint is not the cause
    raise UsageError("export to --export_dir %s failed (%s); nothing of it is left there, "
                     "earlier versions are kept" % (export_dir, cause[:300]))


def _export_saved_model(export_dir, checkpoint, bert_config, label_list, vocab_file,
                        do_lower_case, max_seq_length, temperature=1.0, extra_info=None,
                        warmup_inputs=None, row_blocks=True):
  """Exports the classifier at `checkpoint` to export_dir/<version>/; returns that directory.

  Only model variables are exported (no optimizer slots, no teacher). warmup_inputs: a list of
  {input name: int array [batch, seq]} written as serving warmup requests (plus the text
  signature's own when it is exported). Signatures: serving_default (ids) and, when
  tensorflow-text is installed, text (raw strings; bert/text_signature.py). row_blocks: see
  modeling.BertModel; bert_export.json records from how many rows the graph splits them.
  """
  check_writable(export_dir)
  remove_stale_temp_dirs(export_dir)
  graph = tf.Graph()
  with graph.as_default():
    inputs, outputs = build_serving_graph(bert_config, len(label_list), temperature, row_blocks)
    (model,) = modeling.BertModel.built_in(graph)
    intermediate = intermediate_tensor_names(model)
    variables = tf1.global_variables()
    check_shapes_match(checkpoint, {v.op.name: v for v in variables}, what="checkpoint")
    saver = tf1.train.Saver(variables)
    signature = tf1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
    vocab_asset = tf.constant(os.path.abspath(vocab_file), name="vocab_file")
    tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS, vocab_asset)
    signatures, text_info, main_op = {SIGNATURE_KEY: signature}, None, None
    problem = text_signature.vocab_problem(vocab_file)
    text = None if problem else text_signature.build_text_signature(
        bert_config, label_list, vocab_asset, do_lower_case, max_seq_length, temperature,
        row_blocks)
    if problem:
      log("Exporting without the raw-text signature: %s: %s" % (vocab_file, problem))
    if text:
      signatures[text_signature.TEXT_SIGNATURE_KEY], main_op = text
      text_info = text_signature.settings(do_lower_case, max_seq_length)
    assets = list({t.name: t for t in tf1.get_collection(tf1.GraphKeys.ASSET_FILEPATHS)}.values())
    temp_dir = os.path.join(export_dir, "%s%d-%d" % (TEMP_PREFIX, time.time(), os.getpid()))
    with tf1.Session(graph=graph) as session:
      saver.restore(session, checkpoint)
      builder = tf1.saved_model.Builder(temp_dir)
      builder.add_meta_graph_and_variables(
          session, [SERVE_TAG], signature_def_map=signatures, assets_collection=assets,
          main_op=main_op, strip_default_attrs=True)
      builder.save()
  # The asset keeps its source file name; serving clients look for assets/vocab.txt.
  copied = os.path.join(temp_dir, "assets", os.path.basename(vocab_file))
  if os.path.basename(vocab_file) != "vocab.txt":
    shutil.copyfile(copied, os.path.join(temp_dir, "assets", "vocab.txt"))
  extra_dir = os.path.join(temp_dir, "assets.extra")
  os.makedirs(extra_dir, exist_ok=True)
  info = {"labels": list(label_list), "do_lower_case": bool(do_lower_case),
          "max_seq_length": int(max_seq_length), "temperature": float(temperature),
          "bert_config": bert_config.to_dict(), "vocab_size": bert_config.vocab_size,
          "checkpoint": os.path.abspath(checkpoint), "inputs": list(INPUT_NAMES),
          INTERMEDIATE_KEY: intermediate, "text_signature": text_info,
          "row_blocks_from_rows": model.row_blocks_from_rows,
          "serving_cpu": model.serving_cpu.to_json() if model.serving_cpu else None,
          "serving_intra_op_threads": model.serving_intra_op_threads}
  if text_info:
    info["min_model_server_version"] = text_info["min_model_server_version"]
  info.update(extra_info or {})
  with open(os.path.join(extra_dir, INFO_FILE), "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1, ensure_ascii=False, sort_keys=True)
  if warmup_inputs:
    if text_info:
      warmup_inputs = list(warmup_inputs) + text_signature.warmup_inputs(
          max_seq_length=max_seq_length)
    write_warmup_requests(os.path.join(extra_dir, WARMUP_FILE), warmup_inputs)
  version_dir = _rename_into_place(export_dir, temp_dir)
  log("Exported SavedModel to %s" % version_dir)
  return version_dir


def _rename_into_place(export_dir, temp_dir):
  version = int(time.time())
  while True:
    version_dir = os.path.join(export_dir, str(version))
    try:
      os.rename(temp_dir, version_dir)  # atomic; fails if the name is taken
      return version_dir
    except OSError:
      if not os.path.exists(version_dir):
        raise
      version += 1


def remove_stale_temp_dirs(export_dir):
  """Deletes half-written exports of killed processes (they never had a numeric name)."""
  if not os.path.isdir(export_dir):
    return
  for name in os.listdir(export_dir):
    pid = name.rsplit("-", 1)[-1]
    if name.startswith(TEMP_PREFIX) and pid.isdigit() and not process_alive(int(pid)):
      shutil.rmtree(os.path.join(export_dir, name), ignore_errors=True)


# -- serving warmup: PredictionLog protos, encoded by hand so exporting needs no extra package --

def _varint(value):
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number, payload):
  """A length-delimited protobuf field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def predict_request_bytes(inputs, model_name="", signature_name=SIGNATURE_KEY):
  """A serialized tensorflow.serving.PredictRequest for {input name: array}."""
  spec = b""
  if model_name:
    spec += _field(1, model_name.encode())
  spec += _field(3, signature_name.encode())
  request = _field(1, spec)
  for name in sorted(inputs):
    value = np.asarray(inputs[name])
    if value.dtype.kind in "OSU":  # the text signature's strings
      value = np.array([v.encode("utf-8") if isinstance(v, str) else v for v in value.flat],
                       dtype=object).reshape(value.shape)
      tensor = tf.make_tensor_proto(value, dtype=tf.string).SerializeToString()
    else:
      tensor = tf.make_tensor_proto(value.astype(np.int32)).SerializeToString()
    request += _field(2, _field(1, name.encode()) + _field(2, tensor))
  return request


def prediction_log_bytes(inputs, model_name="", signature_name=SIGNATURE_KEY):
  """PredictionLog{predict_log (6): PredictLog{request (1)}}."""
  return _field(6, _field(1, predict_request_bytes(inputs, model_name, signature_name)))


def write_warmup_requests(path, warmup_inputs):
  with tf.io.TFRecordWriter(path) as writer:
    for inputs in warmup_inputs[:1000]:  # the server reads at most 1000
      signature_name, inputs = inputs if isinstance(inputs, tuple) else (SIGNATURE_KEY, inputs)
      writer.write(prediction_log_bytes(inputs, signature_name=signature_name))


def default_warmup_inputs(max_seq_length, cls_id, sep_id, filler_id, batch_sizes=(1, 8),
                          lengths=(16, None)):
  """[CLS] filler… [SEP] batches at a few shapes, so the server's first real request is not slow."""
  requests = []
  for batch in batch_sizes:
    for length in lengths:
      length = min(length or max_seq_length, max_seq_length)
      ids = np.full([batch, length], filler_id, dtype=np.int32)
      ids[:, 0], ids[:, -1] = cls_id, sep_id
      requests.append({"input_ids": ids, "input_mask": np.ones_like(ids),
                       "segment_ids": np.zeros_like(ids)})
  return requests


def graph_op_types(version_dir):
  """Every op type in an export's graph, functions included (what a server must have registered)."""
  from tensorflow.core.protobuf import saved_model_pb2
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  types = set()
  for meta_graph in saved_model.meta_graphs:
    types.update(node.op for node in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      types.update(node.op for node in function.node_def)
  return types
