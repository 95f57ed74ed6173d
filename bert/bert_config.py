"""BERT's hyper-parameters and variable layout, without TensorFlow.

`BertConfig` is Google's `bert_config.json`; `variable_layout` lists the variables a
`modeling.BertModel` of a config creates (Google's names and shapes, in creation order);
`LAYER_NORM_EPSILON` is the layer norm's epsilon. `modeling.py` builds the graph from these and
`hf_convert.py` checks Hugging Face checkpoints against them without importing TensorFlow.
"""

import collections
import copy
import json

# Google's layer norm (tf.contrib.layers.layer_norm) used this epsilon; Hugging Face BERT too.
LAYER_NORM_EPSILON = 1e-12

# Google's bert_config.json keys, in Google's order.
CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "hidden_act", "hidden_dropout_prob",
               "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
               "initializer_range")
# Keys that must be positive integers.
SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "max_position_embeddings", "type_vocab_size")
# `hidden_act` values modeling.py implements (the keys of modeling.ACTIVATIONS).
ACTIVATION_NAMES = ("gelu", "linear", "relu", "silu", "swish", "tanh")

# Scopes inside bert/encoder/layer_N, in creation order: dense layers (kernel, bias) and layer
# norms (gamma, beta).
LAYER_SCOPES = ("attention/self/query", "attention/self/key", "attention/self/value",
                "attention/output/dense", "attention/output/LayerNorm", "intermediate/dense",
                "output/dense", "output/LayerNorm")


def _getter(config):
  if isinstance(config, dict):
    return config.__getitem__
  return lambda key: getattr(config, key)


def check_sizes(config, source="bert_config"):
  """Raises ValueError naming the key when a size cannot build a model.

  Args:
    config: dict or object with Google's config keys.
    source: what the config came from, for the message.
  """
  get = _getter(config)
  for key in SIZE_KEYS:
    value = get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
      raise ValueError("%s: '%s' must be a positive integer, got %r" % (source, key, value))
  if get("hidden_size") % get("num_attention_heads"):
    raise ValueError("%s: hidden_size %d is not divisible by num_attention_heads %d" %
                     (source, get("hidden_size"), get("num_attention_heads")))


class BertConfig(object):
  """Hyper-parameters of a BERT encoder, as in Google's `bert_config.json`.

  Extra keys found in released configs (`directionality`, `pooler_*`, `model_type`, ...) are kept
  as attributes and written back by `to_dict`, so a config round-trips.
  """

  def __init__(self, vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=16,
               initializer_range=0.02):
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range

  @classmethod
  def from_dict(cls, json_object, source="bert_config"):
    """Builds a config from a dict; `source` names the file in error messages."""
    if "vocab_size" not in json_object:
      raise ValueError("%s: missing required key 'vocab_size'" % source)
    config = cls(vocab_size=None)
    for key, value in json_object.items():
      setattr(config, key, value)
    config.validate(source)
    return config

  @classmethod
  def from_json_file(cls, json_file):
    try:
      with open(json_file, "r", encoding="utf-8") as reader:
        text = reader.read()
    except OSError as e:
      raise ValueError("--bert_config_file %s: cannot read (%s)" % (json_file, e.strerror))
    try:
      data = json.loads(text)
    except ValueError as e:
      raise ValueError("--bert_config_file %s: not valid JSON (%s)" % (json_file, e))
    if not isinstance(data, dict):
      raise ValueError("--bert_config_file %s: expected a JSON object" % json_file)
    return cls.from_dict(data, source="--bert_config_file %s" % json_file)

  def validate(self, source="bert_config"):
    """Raises ValueError naming the key when the config cannot build a model."""
    check_sizes(self, source)
    if not isinstance(self.hidden_act, str) or self.hidden_act.lower() not in ACTIVATION_NAMES:
      raise ValueError("%s: unknown hidden_act %r (expected one of %s)" %
                       (source, self.hidden_act, ", ".join(ACTIVATION_NAMES)))
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, key)
      if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError("%s: '%s' must be in [0, 1), got %r" % (source, key, value))

  def to_dict(self):
    return copy.deepcopy(self.__dict__)

  def to_json_string(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def architecture(self):
    """The keys that decide variable shapes: configs of equal architecture share checkpoints."""
    return {key: getattr(self, key) for key in CONFIG_KEYS if "dropout" not in key
            and key != "initializer_range"}


def variable_layout(config, include_pooler=True):
  """Google's BertModel variables of a config, in creation order.

  Args:
    config: BertConfig, or dict with Google's config keys.
    include_pooler: list `bert/pooler/dense/*` too.
  Returns:
    OrderedDict variable name -> shape tuple.
  """
  get = _getter(config)
  h, inner = get("hidden_size"), get("intermediate_size")
  shapes = collections.OrderedDict()
  shapes["bert/embeddings/word_embeddings"] = (get("vocab_size"), h)
  shapes["bert/embeddings/token_type_embeddings"] = (get("type_vocab_size"), h)
  shapes["bert/embeddings/position_embeddings"] = (get("max_position_embeddings"), h)
  shapes["bert/embeddings/LayerNorm/gamma"] = (h,)
  shapes["bert/embeddings/LayerNorm/beta"] = (h,)
  widths = {"intermediate/dense": (h, inner), "output/dense": (inner, h)}
  for index in range(get("num_hidden_layers")):
    for scope in LAYER_SCOPES:
      prefix = "bert/encoder/layer_%d/%s/" % (index, scope)
      if scope.endswith("LayerNorm"):
        shapes[prefix + "gamma"] = (h,)
        shapes[prefix + "beta"] = (h,)
      else:
        kernel = widths.get(scope, (h, h))
        shapes[prefix + "kernel"] = kernel
        shapes[prefix + "bias"] = (kernel[1],)
  if include_pooler:
    shapes["bert/pooler/dense/kernel"] = (h, h)
    shapes["bert/pooler/dense/bias"] = (h,)
  return shapes


def count_parameters(config, num_labels=0):
  """Number of weights of BertModel (+ a classifier head of num_labels)."""
  total = sum(_product(shape) for shape in variable_layout(config).values())
  return total + (num_labels * (_getter(config)("hidden_size") + 1) if num_labels else 0)


def _product(shape):
  result = 1
  for size in shape:
    result *= size
  return result
