"""Mixed precision and XLA: fp16/bf16 training still learns, state and exports stay float32."""

import os
import random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from bert import classifier, classifier_data, export, modeling, tokenization, training

tf1 = tf.compat.v1

LABELS = ["0", "1"]
MAX_SEQ_LENGTH = 24
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = list("好快香热净")
NEGATIVE = list("差慢贵冷辣")
NEUTRAL = list("很不太吃饭菜送餐味道一般服务态度外卖包装")
TRAIN_STEPS = 80


def _config(vocab_size, num_hidden_layers=2):
  return modeling.BertConfig(vocab_size=vocab_size, hidden_size=32,
                             num_hidden_layers=num_hidden_layers, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=MAX_SEQ_LENGTH,
                             type_vocab_size=2)


def _reviews(count, seed):
  """Label 1 iff the review holds positive marks; the rest is neutral filler."""
  rng = random.Random(seed)
  examples = []
  for index in range(count):
    label = index % 2
    body = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 16))]
    for _ in range(rng.randint(1, 3)):
      body.insert(rng.randrange(len(body) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    examples.append(classifier_data.InputExample("train-%d" % index, "".join(body), None,
                                                 str(label)))
  return examples


class Data(object):

  def __init__(self, root):
    self.root = str(root)
    self.vocab_file = os.path.join(self.root, "vocab.txt")
    with open(self.vocab_file, "w", encoding="utf-8") as f:
      f.write("\n".join(SPECIALS + POSITIVE + NEGATIVE + NEUTRAL) + "\n")
    self.config = _config(len(SPECIALS + POSITIVE + NEGATIVE + NEUTRAL))
    tokenizer = tokenization.FullTokenizer(self.vocab_file, do_lower_case=True)
    self.features = classifier_data.convert_examples_to_features(
        _reviews(32, seed=7), LABELS, MAX_SEQ_LENGTH, tokenizer)
    self.record_file = os.path.join(self.root, "train.tf_record")
    classifier_data.write_records(
        self.record_file, (classifier_data.feature_to_example(f) for f in self.features),
        {"test_precision": True}, {})
    self.labels = np.array([f.label_id for f in self.features])

  def train_input_fn(self, padding="dynamic"):
    return classifier_data.input_fn_builder(self.record_file, True, MAX_SEQ_LENGTH,
                                            padding=padding, seed=1)

  def eval_input_fn(self):
    return classifier_data.input_fn_builder(self.record_file, False, MAX_SEQ_LENGTH)

  def padded_inputs(self):
    ids = np.zeros([len(self.features), MAX_SEQ_LENGTH], np.int32)
    mask = np.zeros_like(ids)
    for row, feature in enumerate(self.features):
      ids[row, :len(feature.input_ids)] = feature.input_ids
      mask[row, :len(feature.input_ids)] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids)}

  def trainer(self, output_dir, precision, steps=TRAIN_STEPS, use_xla=False, config=None):
    model_fn = classifier.model_fn_builder(config or self.config, LABELS, learning_rate=1e-3,
                                           num_train_steps=steps, num_warmup_steps=0,
                                           precision=precision)
    return training.Trainer(model_fn, str(output_dir), params={"seed": 3},
                            save_checkpoints_steps=10000, log_every_n_steps=10000,
                            use_xla=use_xla)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return Data(tmp_path_factory.mktemp("precision_data"))


def _probabilities(trainer, data, checkpoint):
  rows = list(trainer.predict(data.eval_input_fn(), batch_size=32, checkpoint_path=checkpoint))
  return np.stack([row["probabilities"] for row in rows])


def _serve(version_dir, inputs):
  graph = tf.Graph()
  with tf1.Session(graph=graph) as session:
    meta_graph = tf1.saved_model.loader.load(session, [export.SERVE_TAG], version_dir)
    signature = meta_graph.signature_def[export.SIGNATURE_KEY]
    feed = {graph.get_tensor_by_name(signature.inputs[name].name): value
            for name, value in inputs.items()}
    return session.run(graph.get_tensor_by_name(signature.outputs["probabilities"].name), feed)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_training_overfits_with_float32_state_and_export(precision, data,
                                                                       tmp_path):
  trainer = data.trainer(tmp_path / "model", precision)
  checkpoint = trainer.train(data.train_input_fn(), TRAIN_STEPS, batch_size=16)

  # Learns: the 32 training reviews are fitted, evaluated in the training precision.
  metrics = trainer.evaluate(data.eval_input_fn(), batch_size=32, results_file=None)
  assert metrics["eval_accuracy"] >= 0.95, metrics

  # Every floating-point variable of the checkpoint (weights, Adam slots, loss scale) is fp32.
  dtypes = tf.train.load_checkpoint(checkpoint).get_variable_to_dtype_map()
  assert "bert/encoder/layer_0/attention/self/query/kernel" in dtypes
  assert "bert/encoder/layer_0/attention/self/query/kernel/adam_m" in dtypes
  low = {name: dtype for name, dtype in dtypes.items() if dtype.is_floating and
         dtype != tf.float32}
  assert not low, low
  if precision == "fp16":
    scale = tf.train.load_checkpoint(checkpoint).get_tensor("loss_scale")
    assert np.isfinite(scale) and scale >= 1.0
  else:
    assert "loss_scale" not in dtypes

  # The export is fp32: its variables and its predictions are those of an fp32 model.
  version_dir = export.export_saved_model(str(tmp_path / "export"), checkpoint, data.config,
                                          LABELS, data.vocab_file, True, MAX_SEQ_LENGTH)
  exported_dtypes = tf.train.load_checkpoint(
      os.path.join(version_dir, "variables", "variables")).get_variable_to_dtype_map()
  assert exported_dtypes and set(exported_dtypes.values()) == {tf.float32}
  served = _serve(version_dir, data.padded_inputs())
  fp32 = _probabilities(data.trainer(tmp_path / "model", "fp32"), data, checkpoint)
  np.testing.assert_allclose(served, fp32, atol=1e-5)
  # ...and agree with the low-precision model that was trained.
  trained = _probabilities(trainer, data, checkpoint)
  assert np.mean(np.argmax(served, -1) == np.argmax(trained, -1)) >= 0.95
  assert np.max(np.abs(served - trained)) < 0.1
  assert np.mean(np.argmax(served, -1) == data.labels) >= 0.95


def _xla_unavailable_reason():
  """Why XLA cannot compile on this machine's CPU, or None when a tiny jit works."""
  graph = tf.Graph()
  with graph.as_default():
    with tf1.xla.experimental.jit_scope():
      x = tf.constant(np.ones([2, 2], np.float32))
      y = tf.matmul(x, x) + 1.0
  try:
    with tf1.Session(graph=graph, config=training.session_config(True)) as session:
      value = session.run(y)
  except (tf.errors.OpError, ValueError) as e:
    return "XLA is unavailable on this CPU: %s" % " ".join(str(e).split())[:200]
  if not np.allclose(value, 3.0):
    return "XLA computed a wrong result"
  return None


def test_use_xla_builds_and_trains(data, tmp_path):
  reason = _xla_unavailable_reason()
  if reason:
    pytest.skip(reason)
  steps = 3
  # One layer: XLA compiles the whole train step (forward, gradients, Adam) on the first step.
  trainer = data.trainer(tmp_path / "xla", "fp32", steps=steps, use_xla=True,
                         config=_config(data.config.vocab_size, num_hidden_layers=1))
  # Fixed padding: one shape, so XLA compiles the step once.
  checkpoint = trainer.train(data.train_input_fn(padding="fixed"), steps, batch_size=16)
  assert checkpoint and checkpoint.endswith("-%d" % steps)
  reader = tf.train.load_checkpoint(checkpoint)
  assert reader.get_tensor("global_step") == steps
  kernel = reader.get_tensor("bert/encoder/layer_0/attention/self/query/kernel")
  assert kernel.dtype == np.float32 and np.all(np.isfinite(kernel))
