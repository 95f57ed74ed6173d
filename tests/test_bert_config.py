"""bert_config: the one variable layout equals what BertModel builds; no TensorFlow needed."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert import bert_config, hf_convert, modeling

import conftest

tf1 = tf.compat.v1

SMALL = conftest.tiny_config_dict(vocab_size=23, hidden_size=12, num_attention_heads=3,
                                  intermediate_size=20, max_position_embeddings=17)
# Three layers, 16 token types, intermediate narrower than hidden: every shape differs.
OTHER = conftest.tiny_config_dict(vocab_size=31, hidden_size=8, num_hidden_layers=3,
                                  num_attention_heads=2, intermediate_size=6,
                                  max_position_embeddings=9, type_vocab_size=16)


@pytest.mark.parametrize("values", [SMALL, OTHER])
def test_layout_is_what_bert_model_creates(values):
  config = bert_config.BertConfig.from_dict(values)
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    modeling.BertModel(config, True, ids)
    built = [(v.op.name, tuple(v.shape.as_list())) for v in tf1.trainable_variables()]
  layout = bert_config.variable_layout(config)
  assert built == list(layout.items())  # names, shapes and creation order
  assert bert_config.variable_layout(values) == layout  # a dict works as well
  assert hf_convert.expected_variables(values) == layout
  assert list(bert_config.variable_layout(config, include_pooler=False)) == [
      name for name in layout if not name.startswith("bert/pooler/")]
  parameters = sum(int(np.prod(shape)) for _, shape in built)
  assert modeling.count_parameters(config) == parameters
  assert modeling.count_parameters(config, 3) == parameters + 3 * config.hidden_size + 3


def test_shared_names_and_constants():
  assert modeling.BertConfig is bert_config.BertConfig
  assert modeling.LAYER_NORM_EPSILON == bert_config.LAYER_NORM_EPSILON
  assert hf_convert.GOOGLE_CONFIG_KEYS == bert_config.CONFIG_KEYS
  assert sorted(modeling.ACTIVATIONS) == list(bert_config.ACTIVATION_NAMES)
  assert set(hf_convert._ACTIVATIONS.values()) <= set(bert_config.ACTIVATION_NAMES)


def test_config_and_conversion_checks_import_no_tensorflow():
  code = ("import sys; sys.modules['tensorflow'] = None\n"
          "from bert import bert_config, hf_convert\n"
          "config, _ = hf_convert.hf_config_to_google({'vocab_size': 5, 'hidden_size': 4, "
          "'num_attention_heads': 2, 'intermediate_size': 8, 'num_hidden_layers': 1})\n"
          "print(bert_config.count_parameters(config))\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=conftest.REPO_ROOT, check=True,
                       capture_output=True, text=True).stdout
  assert int(out) > 0
