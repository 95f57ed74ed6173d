"""Import Hugging Face BERT checkpoints (safetensors) as Google BERT checkpoints.

A Hugging Face BERT directory holds `config.json`, `model.safetensors` (or sharded
`model-0000N-of-0000M.safetensors` with `model.safetensors.index.json`) and `vocab.txt`.
`convert_hf_directory` turns it into what Google released and what `modeling.BertModel`
loads with `tf.compat.v1.train.init_from_checkpoint(ckpt, {"bert/": "bert/"})`:

  bert_config.json                     the 11 Google hyper-parameter keys
  vocab.txt                            copied unchanged
  bert_model.ckpt.{index,data-*}       float32 variables under Google's names

Only the encoder (embeddings, layers, pooler) is converted. Task heads (`cls.*`,
`classifier.*`, `qa_outputs.*`, ...) and buffers (`embeddings.position_ids`) are skipped with a
warning; an unknown tensor inside the encoder, a missing one, or a shape that contradicts
`config.json` is a ValueError naming the tensors, because a half-loaded encoder fails silently.

Reading uses the numpy API of `safetensors` (no torch); TensorFlow is imported only to write
the checkpoint, so the name mapping and every input check run without it.
"""

import collections
import json
import logging
import os
import re
import shutil
import struct
import time

import numpy as np

from bert import bert_config

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "bert_model.ckpt"
CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"

HF_CONFIG_NAME = "config.json"
HF_WEIGHTS_NAME = "model.safetensors"
HF_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
HF_VOCAB_NAME = "vocab.txt"
_NON_SAFETENSORS_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
                            "flax_model.msgpack")

# Google's bert_config.json keys, in Google's order.
GOOGLE_CONFIG_KEYS = bert_config.CONFIG_KEYS

# transformers.BertConfig defaults: what transformers itself assumes for a key config.json omits.
HF_BERT_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}

# Hugging Face activation name -> modeling.py activation name. HF "gelu" is the exact erf GELU,
# the one modeling.gelu implements.
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
    "silu": "swish",
    "swish": "swish"
}
# Approximate or clipped GELUs: modeling.py has only the exact one, so the converted model would
# compute something else than the network was trained with.
_APPROXIMATE_GELUS = ("gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_accurate", "quick_gelu",
                      "gelu_10")

_PREFIX = "bert."
# Persistent buffers some transformers versions saved; they are not weights.
_BUFFERS = frozenset(["embeddings.position_ids", "embeddings.token_type_ids"])

_EMBEDDING_TABLES = ("word_embeddings", "token_type_embeddings", "position_embeddings")
# Linear modules inside encoder.layer.N, HF path -> Google scope inside layer_N.
_LAYER_DENSES = collections.OrderedDict([
    ("attention.self.query", "attention/self/query"),
    ("attention.self.key", "attention/self/key"),
    ("attention.self.value", "attention/self/value"),
    ("attention.output.dense", "attention/output/dense"),
    ("intermediate.dense", "intermediate/dense"),
    ("output.dense", "output/dense"),
])
_LAYER_NORMS = collections.OrderedDict([
    ("attention.output.LayerNorm", "attention/output/LayerNorm"),
    ("output.LayerNorm", "output/LayerNorm"),
])
_NORM_PARAMS = {"weight": "gamma", "gamma": "gamma", "bias": "beta", "beta": "beta"}
_DENSE_PARAMS = {"weight": "kernel", "bias": "bias"}

_LAYER_RE = re.compile(r"^encoder\.layer\.(0|[1-9][0-9]*)\.(.+)\.([A-Za-z_]+)$")
_GOOGLE_LAYER_RE = re.compile(r"^bert/encoder/layer_(0|[1-9][0-9]*)/(.+)/([a-z_]+)$")

# ----------------------------------------------------------------------------------------------
# Name mapping (pure).


def strip_prefix(hf_name):
  """`bert.encoder...` -> `encoder...`; names without the prefix are returned unchanged."""
  return hf_name[len(_PREFIX):] if hf_name.startswith(_PREFIX) else hf_name


def hf_to_google_name(hf_name):
  """Google variable name of an HF BERT encoder tensor, or None when it is not one.

  Accepts names with or without the `bert.` prefix, and LayerNorm parameters spelt
  `weight`/`bias` or the old `gamma`/`beta`. Shapes are not checked here; Linear weights
  need a transpose (see `is_kernel`).
  """
  name = strip_prefix(hf_name)
  parts = name.split(".")
  if len(parts) == 3 and parts[0] == "embeddings":
    if parts[1] in _EMBEDDING_TABLES and parts[2] == "weight":
      return "bert/embeddings/%s" % parts[1]
    if parts[1] == "LayerNorm" and parts[2] in _NORM_PARAMS:
      return "bert/embeddings/LayerNorm/%s" % _NORM_PARAMS[parts[2]]
    return None
  if len(parts) == 3 and parts[:2] == ["pooler", "dense"] and parts[2] in _DENSE_PARAMS:
    return "bert/pooler/dense/%s" % _DENSE_PARAMS[parts[2]]
  match = _LAYER_RE.match(name)
  if match:
    index, module, param = match.groups()
    if module in _LAYER_DENSES and param in _DENSE_PARAMS:
      return "bert/encoder/layer_%s/%s/%s" % (index, _LAYER_DENSES[module], _DENSE_PARAMS[param])
    if module in _LAYER_NORMS and param in _NORM_PARAMS:
      return "bert/encoder/layer_%s/%s/%s" % (index, _LAYER_NORMS[module], _NORM_PARAMS[param])
  return None


def google_to_hf_name(google_name, prefix=_PREFIX):
  """HF name (modern `weight`/`bias` spelling, with `prefix`) of a Google BERT variable.

  Raises:
    ValueError: `google_name` is not a variable of Google's BertModel.
  """
  parts = google_name.split("/")
  hf = None
  if len(parts) == 3 and parts[:2] == ["bert", "embeddings"] and parts[2] in _EMBEDDING_TABLES:
    hf = "embeddings.%s.weight" % parts[2]
  elif len(parts) == 4 and parts[:3] == ["bert", "embeddings", "LayerNorm"]:
    hf = {"gamma": "embeddings.LayerNorm.weight", "beta": "embeddings.LayerNorm.bias"}.get(parts[3])
  elif len(parts) == 4 and parts[:3] == ["bert", "pooler", "dense"]:
    hf = {"kernel": "pooler.dense.weight", "bias": "pooler.dense.bias"}.get(parts[3])
  else:
    match = _GOOGLE_LAYER_RE.match(google_name)
    if match:
      index, scope, param = match.groups()
      for hf_module, google_scope in _LAYER_DENSES.items():
        if scope == google_scope and param in ("kernel", "bias"):
          hf = "encoder.layer.%s.%s.%s" % (index, hf_module,
                                           "weight" if param == "kernel" else "bias")
      for hf_module, google_scope in _LAYER_NORMS.items():
        if scope == google_scope and param in ("gamma", "beta"):
          hf = "encoder.layer.%s.%s.%s" % (index, hf_module,
                                           "weight" if param == "gamma" else "bias")
  if hf is None:
    raise ValueError("%r is not a variable name of Google's BertModel" % (google_name,))
  return prefix + hf


def is_kernel(google_name):
  """True for dense kernels: Google stores [in, out], HF Linear weights are [out, in]."""
  return google_name.endswith("/kernel")


def is_encoder_name(hf_name):
  """True when an HF tensor belongs to the BERT encoder rather than to a head.

  Everything under the `bert.` prefix, and unprefixed `embeddings.*`, `encoder.*`, `pooler.*`.
  """
  if hf_name.startswith(_PREFIX):
    return True
  return hf_name.split(".", 1)[0] in ("embeddings", "encoder", "pooler")


def expected_variables(config, include_pooler=True):
  """OrderedDict Google variable name -> shape, in BertModel's creation order.

  Args:
    config: dict (or object with attributes) with Google's config keys.
  """
  return bert_config.variable_layout(config, include_pooler)


# ----------------------------------------------------------------------------------------------
# Config.


def hf_config_to_google(hf_config, source=HF_CONFIG_NAME):
  """Google `bert_config.json` dict from an HF BERT `config.json` dict.

  Keys missing from `hf_config` take transformers' BertConfig defaults (as transformers does).

  Returns:
    (google_config, notes): notes are warnings worth showing (defaulted keys, epsilon).
  Raises:
    ValueError: not a BERT config, or one modeling.py cannot reproduce.
  """
  if not isinstance(hf_config, dict):
    raise ValueError("%s: expected a JSON object" % source)
  model_type = hf_config.get("model_type", "bert")
  if model_type != "bert":
    raise ValueError("%s: model_type %r is not supported, only 'bert'" % (source, model_type))
  position_type = hf_config.get("position_embedding_type", "absolute")
  if position_type != "absolute":
    raise ValueError("%s: position_embedding_type %r is not supported, only 'absolute'" %
                     (source, position_type))
  notes = []
  defaulted = [key for key in GOOGLE_CONFIG_KEYS if key not in hf_config]
  if defaulted:
    notes.append("%s lacks %s; using transformers' BertConfig defaults" %
                 (source, ", ".join(defaulted)))
  config = collections.OrderedDict(
      (key, hf_config.get(key, HF_BERT_DEFAULTS[key])) for key in GOOGLE_CONFIG_KEYS)

  bert_config.check_sizes(config, source)
  for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range"):
    if not isinstance(config[key], (int, float)) or isinstance(config[key], bool):
      raise ValueError("%s: '%s' must be a number, got %r" % (source, key, config[key]))

  act = config["hidden_act"]
  if not isinstance(act, str):
    raise ValueError("%s: hidden_act must be a string, got %r" % (source, act))
  if act.lower() in _APPROXIMATE_GELUS:
    raise ValueError(
        "%s: hidden_act %r (an approximate GELU) is not supported: modeling.py implements only "
        "the exact erf GELU ('gelu'), so the converted model would compute different outputs" %
        (source, act))
  if act.lower() not in _ACTIVATIONS:
    raise ValueError("%s: hidden_act %r is not supported (supported: %s)" %
                     (source, act, ", ".join(sorted(_ACTIVATIONS))))
  config["hidden_act"] = _ACTIVATIONS[act.lower()]

  google_eps = bert_config.LAYER_NORM_EPSILON
  eps = hf_config.get("layer_norm_eps", google_eps)
  if isinstance(eps, (int, float)) and not np.isclose(eps, google_eps, rtol=1e-3, atol=0.0):
    notes.append("%s: layer_norm_eps is %g but modeling.py uses %g; outputs will differ "
                 "slightly" % (source, eps, google_eps))
  return config, notes


# ----------------------------------------------------------------------------------------------
# Reading an HF directory.


class HFFiles(collections.namedtuple("HFFiles", "config weights vocab")):
  """Paths in an HF directory: config.json, the list of safetensors files, vocab.txt."""


def locate_hf_files(hf_dir):
  """Finds config.json, the safetensors weights and vocab.txt, or raises a one-line ValueError."""
  if not os.path.isdir(hf_dir):
    raise ValueError("hf_dir %s: directory not found" % hf_dir)
  config = os.path.join(hf_dir, HF_CONFIG_NAME)
  if not os.path.isfile(config):
    raise ValueError("hf_dir %s: %s not found" % (hf_dir, HF_CONFIG_NAME))

  single = os.path.join(hf_dir, HF_WEIGHTS_NAME)
  index = os.path.join(hf_dir, HF_WEIGHTS_INDEX_NAME)
  if os.path.isfile(single):
    weights = [single]
  elif os.path.isfile(index):
    weights = _shards_from_index(index)
  else:
    others = [
        name for name in _NON_SAFETENSORS_WEIGHTS if os.path.isfile(os.path.join(hf_dir, name))
    ]
    if others:
      raise ValueError("hf_dir %s: has %s but no %s; convert it to safetensors first, e.g. with "
                       "transformers: BertModel.from_pretrained(dir).save_pretrained(out, "
                       "safe_serialization=True)" % (hf_dir, others[0], HF_WEIGHTS_NAME))
    raise ValueError("hf_dir %s: %s not found" % (hf_dir, HF_WEIGHTS_NAME))

  vocab = os.path.join(hf_dir, HF_VOCAB_NAME)
  if not os.path.isfile(vocab):
    raise ValueError("hf_dir %s: %s not found (a WordPiece vocabulary is required)" %
                     (hf_dir, HF_VOCAB_NAME))
  return HFFiles(config, weights, vocab)


def _shards_from_index(index_path):
  try:
    with open(index_path, "r", encoding="utf-8") as reader:
      weight_map = json.load(reader)["weight_map"]
    shards = sorted(set(weight_map.values()))
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError("%s: not a valid safetensors index (%s)" % (index_path, e))
  paths = [os.path.join(os.path.dirname(index_path), shard) for shard in shards]
  for path in paths:
    if not os.path.isfile(path):
      raise ValueError("%s: shard %s not found" % (index_path, path))
  return paths


def read_hf_config(path):
  try:
    with open(path, "r", encoding="utf-8") as reader:
      return json.load(reader)
  except OSError as e:
    raise ValueError("%s: cannot read (%s)" % (path, e.strerror))
  except ValueError as e:
    raise ValueError("%s: not valid JSON (%s)" % (path, e))


def _safe_open(path):
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  try:
    return safe_open(path, framework="np")
  except Exception as e:  # safetensors raises its own error types
    raise ValueError("%s: cannot read as safetensors (%s)" % (path, str(e).splitlines()[0]))


def list_safetensors(paths):
  """OrderedDict tensor name -> (path, shape tuple, dtype string), without reading data."""
  entries = collections.OrderedDict()
  for path in paths:
    with _safe_open(path) as handle:
      for name in handle.keys():
        if name in entries:
          raise ValueError("tensor %s appears in both %s and %s" % (name, entries[name][0], path))
        piece = handle.get_slice(name)
        entries[name] = (path, tuple(piece.get_shape()), piece.get_dtype())
  return entries


def _read_bf16(path, name):
  """numpy has no bfloat16: read the raw 16-bit words and widen them to float32."""
  with open(path, "rb") as reader:
    (header_size,) = struct.unpack("<Q", reader.read(8))
    header = json.loads(reader.read(header_size))
    begin, end = header[name]["data_offsets"]
    reader.seek(8 + header_size + begin)
    words = np.frombuffer(reader.read(end - begin), dtype="<u2")
  return (words.astype(np.uint32) << 16).view(np.float32).reshape(header[name]["shape"])


def read_tensors(entries, names):
  """Reads `names` (listed by `list_safetensors`) as float32 arrays."""
  by_path = collections.OrderedDict()
  for name in names:
    by_path.setdefault(entries[name][0], []).append(name)
  arrays = {}
  for path, path_names in by_path.items():
    with _safe_open(path) as handle:
      for name in path_names:
        dtype = entries[name][2]
        if dtype == "BF16":
          value = _read_bf16(path, name)
        elif dtype in ("F16", "F32", "F64"):
          value = handle.get_tensor(name)
        else:
          raise ValueError("%s: tensor %s has dtype %s, expected a float type" %
                           (path, name, dtype))
        arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
  return arrays


def _name_list(names, limit=8):
  names = list(names)
  shown = ", ".join(names[:limit])
  if len(names) > limit:
    shown += " and %d more" % (len(names) - limit)
  return shown


def plan_conversion(shapes, google_config):
  """Decides what every HF tensor becomes (pure: names and shapes only).

  Args:
    shapes: mapping HF tensor name -> shape (HF layout).
    google_config: dict from `hf_config_to_google`.
  Returns:
    (mapping, skipped, notes): mapping OrderedDict Google name -> HF name in BertModel order;
    skipped list of (HF name, reason); notes list of warnings.
  Raises:
    ValueError: one line naming unknown, duplicate, unexpected, missing or mis-shaped tensors.
  """
  expected = expected_variables(google_config)
  mapping, skipped, notes = {}, [], []
  unknown, unexpected, duplicates, bad_shapes = [], [], [], []
  for hf_name in shapes:
    google = hf_to_google_name(hf_name)
    if google is None:
      if strip_prefix(hf_name) in _BUFFERS:
        skipped.append((hf_name, "buffer, not a weight"))
      elif is_encoder_name(hf_name):
        unknown.append(hf_name)
      else:
        skipped.append((hf_name, "not part of the BERT encoder (task head)"))
      continue
    if google not in expected:
      unexpected.append(hf_name)
      continue
    if google in mapping:
      duplicates.append("%s and %s" % (mapping[google], hf_name))
      continue
    mapping[google] = hf_name
    want = expected[google][::-1] if is_kernel(google) else expected[google]
    if tuple(shapes[hf_name]) != tuple(want):
      bad_shapes.append("%s %s (expected %s)" % (hf_name, list(shapes[hf_name]), list(want)))

  prefix = _PREFIX if any(name.startswith(_PREFIX) for name in mapping.values()) else ""
  pooler = [name for name in expected if name.startswith("bert/pooler/")]
  if not any(name in mapping for name in pooler):
    for name in pooler:
      del expected[name]
    notes.append("no pooler (%spooler.dense.*) in the checkpoint: bert/pooler/dense is "
                 "omitted, so init_from_checkpoint needs an assignment map without it" % prefix)
  missing = [google_to_hf_name(name, prefix) for name in expected if name not in mapping]

  problems = []
  if unknown:
    problems.append("unknown encoder tensors: %s" % _name_list(unknown))
  if unexpected:
    problems.append("tensors not in a %d-layer BERT per config.json: %s" %
                    (google_config["num_hidden_layers"], _name_list(unexpected)))
  if duplicates:
    problems.append("tensors mapping to the same variable: %s" % _name_list(duplicates))
  if missing:
    problems.append("missing tensors: %s" % _name_list(missing))
  if bad_shapes:
    problems.append("shapes contradict config.json: %s" % _name_list(bad_shapes, 4))
  if problems:
    raise ValueError("; ".join(problems))

  ordered = collections.OrderedDict((name, mapping[name]) for name in expected)
  return ordered, skipped, notes


def load_hf_directory(hf_dir):
  """Reads and checks an HF BERT directory.

  Returns:
    dict with keys `files` (HFFiles), `config` (Google config dict), `variables` (OrderedDict
    Google name -> float32 array in Google layout), `skipped` (list of (HF name, reason)),
    `notes` (warnings).
  """
  files = locate_hf_files(hf_dir)
  google_config, notes = hf_config_to_google(read_hf_config(files.config), files.config)
  entries = list_safetensors(files.weights)
  mapping, skipped, plan_notes = plan_conversion(
      collections.OrderedDict((name, entry[1]) for name, entry in entries.items()), google_config)
  notes = notes + plan_notes

  vocab_lines = _count_lines(files.vocab)
  if vocab_lines != google_config["vocab_size"]:
    notes.append("%s has %d tokens but vocab_size is %d" %
                 (files.vocab, vocab_lines, google_config["vocab_size"]))

  arrays = read_tensors(entries, list(mapping.values()))
  variables = collections.OrderedDict()
  for google, hf_name in mapping.items():
    value = arrays.pop(hf_name)
    variables[google] = np.ascontiguousarray(value.T) if is_kernel(google) else value
  return {
      "files": files,
      "config": google_config,
      "variables": variables,
      "skipped": skipped,
      "notes": notes
  }


def _count_lines(path):
  with open(path, "rb") as reader:
    return sum(1 for _ in reader)


# ----------------------------------------------------------------------------------------------
# Writing.


def write_checkpoint(variables, checkpoint_prefix):
  """Saves float32 arrays as a TF1 (V2 format) checkpoint under their given names.

  Values go in through placeholders, so the graph stays small whatever the model size.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  graph = tf.Graph()
  with graph.as_default():
    feeds, var_list = {}, {}
    for index, (name, value) in enumerate(variables.items()):
      placeholder = tf1.placeholder(tf.float32, value.shape, name="value_%d" % index)
      var_list[name] = tf1.Variable(placeholder, trainable=False, name="var_%d" % index)
      feeds[placeholder] = value
    saver = tf1.train.Saver(var_list=var_list,
                            write_version=tf1.train.SaverDef.V2,
                            save_relative_paths=True)
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.variables_initializer(list(var_list.values())), feed_dict=feeds)
      try:
        saver.save(sess, checkpoint_prefix, write_meta_graph=False, write_state=False)
      except tf.errors.OpError as e:
        raise OSError("cannot write %s (%s)" % (checkpoint_prefix, e.message))
  written = dict(tf.train.list_variables(checkpoint_prefix))
  wrong = [name for name, value in variables.items() if tuple(written.get(name, ())) != value.shape]
  if wrong or len(written) != len(variables):
    raise RuntimeError("checkpoint %s does not hold what was written (%s)" %
                       (checkpoint_prefix, _name_list(wrong)))


def output_conflicts(output_dir, vocab_source=None):
  """Files a conversion into `output_dir` would replace."""
  conflicts = []
  for name in (CHECKPOINT_NAME + ".index", CONFIG_NAME, VOCAB_NAME):
    path = os.path.join(output_dir, name)
    if os.path.exists(path):
      if (name == VOCAB_NAME and vocab_source is not None and os.path.exists(vocab_source) and
          os.path.samefile(path, vocab_source)):
        continue
      conflicts.append(name)
  return conflicts


ConversionResult = collections.namedtuple(
    "ConversionResult",
    "checkpoint config_file vocab_file files num_variables num_parameters skipped warnings "
    "config seconds")


def convert_hf_directory(hf_dir, output_dir, overwrite=False):
  """Converts an HF BERT directory into a Google BERT directory.

  Args:
    hf_dir: directory with config.json, model.safetensors (or an index and shards), vocab.txt.
    output_dir: created if needed; gets bert_config.json, vocab.txt, bert_model.ckpt.*.
    overwrite: replace an existing bert_model.ckpt / bert_config.json / vocab.txt.
  Returns:
    ConversionResult: `checkpoint` is the prefix to pass to init_from_checkpoint; `skipped` the
    (HF name, reason) pairs left out; `warnings` the other warnings. Both are also logged.
  Raises:
    ValueError: bad input, with a one-line message.
  """
  start = time.time()
  files = locate_hf_files(hf_dir)
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise ValueError("output_dir %s: exists and is not a directory" % output_dir)
  conflicts = output_conflicts(output_dir, files.vocab)
  if conflicts and not overwrite:
    raise ValueError("output_dir %s already has %s; pass overwrite (--overwrite) to replace" %
                     (output_dir, ", ".join(conflicts)))

  loaded = load_hf_directory(hf_dir)
  if loaded["skipped"]:
    logger.warning("skipped %d tensors: %s", len(loaded["skipped"]),
                   ", ".join("%s (%s)" % item for item in loaded["skipped"]))
  for message in loaded["notes"]:
    logger.warning("%s", message)

  os.makedirs(output_dir, exist_ok=True)
  checkpoint = os.path.join(output_dir, CHECKPOINT_NAME)
  write_checkpoint(loaded["variables"], checkpoint)
  config_file = os.path.join(output_dir, CONFIG_NAME)
  with open(config_file, "w", encoding="utf-8") as writer:
    writer.write(json.dumps(loaded["config"], indent=2) + "\n")
  vocab_file = os.path.join(output_dir, VOCAB_NAME)
  if not (os.path.exists(vocab_file) and os.path.samefile(vocab_file, files.vocab)):
    shutil.copyfile(files.vocab, vocab_file)

  written = sorted(
      os.path.join(output_dir, name)
      for name in os.listdir(output_dir)
      if name.startswith(CHECKPOINT_NAME + "."))
  variables = loaded["variables"]
  return ConversionResult(checkpoint=checkpoint,
                          config_file=config_file,
                          vocab_file=vocab_file,
                          files=[config_file, vocab_file] + written,
                          num_variables=len(variables),
                          num_parameters=int(sum(value.size for value in variables.values())),
                          skipped=loaded["skipped"],
                          warnings=list(loaded["notes"]),
                          config=dict(loaded["config"]),
                          seconds=time.time() - start)
