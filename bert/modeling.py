"""BERT encoder in tf.compat.v1 graph mode, variable-for-variable matching Google's checkpoints.

Every variable is created with `get_variable` under the same scopes as Google's release
(`bert/embeddings/...`, `bert/encoder/layer_N/...`, `bert/pooler/dense`), so
`tf.compat.v1.train.init_from_checkpoint` loads BERT-Base Chinese or a BERT miniature unchanged.
No Keras: dense and layer-norm are written here.
"""

import copy
import math
import weakref

import tensorflow as tf

# BertConfig, the variable layout and the epsilon live in a TensorFlow-free module; re-exported.
from bert.bert_config import BertConfig  # noqa: F401  (re-export: modeling.BertConfig)
from bert.bert_config import LAYER_NORM_EPSILON
from bert.bert_config import count_parameters  # noqa: F401  (re-export)
from bert.serving_cpu import ServingCpu

tf1 = tf.compat.v1

# Added to attention scores of padding positions; representable in fp16 and bf16.
MASK_ADDER = -10000.0

# {graph: [BertModel, ...]}, see BertModel.built_in; weak keys, so a dropped graph is forgotten.
_MODELS = weakref.WeakKeyDictionary()


def gelu(x):
  """Exact Gaussian error linear unit, 0.5·x·(1 + erf(x/√2)), as BERT was trained with."""
  return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(math.sqrt(2.0), x.dtype)))


ACTIVATIONS = {"gelu": gelu, "relu": tf.nn.relu, "tanh": tf.tanh, "linear": tf.identity,
               "swish": tf.nn.swish, "silu": tf.nn.swish}


def get_activation(name):
  if name is None:
    return tf.identity
  try:
    return ACTIVATIONS[name.lower()]
  except (KeyError, AttributeError):
    raise ValueError("unknown activation %r (expected one of %s)" % (name, sorted(ACTIVATIONS)))


def create_initializer(initializer_range=0.02):
  return tf1.truncated_normal_initializer(stddev=initializer_range)


# Dropout draws 16 random bits per element: the rate is rounded to a multiple of 1/2^16.
DROPOUT_LEVELS = 1 << 16


def dropout(x, rate):
  """Inverted dropout: zeroes each element with probability ~rate, scales the rest by 1/keep.

  Random numbers are most of dropout's cost on a CPU (TensorFlow's Philox makes one 32-bit word
  per element of tf.nn.dropout; ~9 % of a training step's op time at 4 × 256, batch 32 × 128).
  Each word here gives two 16-bit draws, so half the words are made. The rate is rounded to a
  multiple of 1/65536 (0.1 becomes 0.100006) and the scale uses the rounded rate, so the
  expectation is unchanged. The words come from a stateless generator seeded by a stateful
  op: a new mask every run, reproducible under tf.compat.v1.set_random_seed, and no generator
  state in checkpoints. The random ops stay out of XLA clusters (XLA's CPU Philox is slower).
  """
  if not rate:
    return x
  threshold = min(int(round(rate * DROPOUT_LEVELS)), DROPOUT_LEVELS - 1)  # keep ≥ 1 level
  shape, size = tf.shape(x), tf.size(x)
  with tf.xla.experimental.jit_scope(compile_ops=False):
    seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None,
                                        dtype=tf.uint32)
    draws = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
  keep = tf.reshape(draws >= threshold, shape)
  scale = tf.cast(DROPOUT_LEVELS / (DROPOUT_LEVELS - threshold), x.dtype)
  return x * tf.cast(keep, x.dtype) * scale


def dense(x, units, name, activation=None, initializer_range=0.02):
  """x·kernel + bias with Google's variable names `name/kernel`, `name/bias`.

  Args:
    x: [rows, in_width].
  Returns:
    [rows, units].
  """
  with tf1.variable_scope(name):
    kernel = tf1.get_variable("kernel", [x.shape[-1], units],
                              initializer=create_initializer(initializer_range))
    bias = tf1.get_variable("bias", [units], initializer=tf1.zeros_initializer())
    y = tf.nn.bias_add(tf.matmul(x, tf.cast(kernel, x.dtype)), tf.cast(bias, x.dtype))
  return activation(y) if activation is not None else y


def layer_norm(x, name="LayerNorm", is_training=True):
  """Layer norm over the last axis with `name/gamma`, `name/beta`, always computed in fp32.

  Inference graphs compute (x - mean) · rsqrt(variance + eps) · gamma + beta in that order:
  tf.nn.batch_normalization (training graphs) first broadcasts its per-row scale and offset to
  x's shape, two more full-size tensors per layer norm. Served, this form measured 1.03-1.11×
  faster for the student at batch 8 × 128 and 32 × 32 (level at batch 1); in the fp32 training
  step (XLA clusters on) it was 0.96×, so training keeps batch_normalization. The two agree to
  ~5e-7 per layer norm.
  """
  with tf1.variable_scope(name):
    width = x.shape[-1]
    gamma = tf.cast(tf1.get_variable("gamma", [width], initializer=tf1.ones_initializer()),
                    tf.float32)
    beta = tf.cast(tf1.get_variable("beta", [width], initializer=tf1.zeros_initializer()),
                   tf.float32)
    x32 = tf.cast(x, tf.float32)
    if is_training:
      mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
      y = tf.nn.batch_normalization(x32, mean, variance, beta, gamma, LAYER_NORM_EPSILON)
    else:
      centered = x32 - tf.reduce_mean(x32, axis=-1, keepdims=True)
      variance = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
      y = centered * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta
  return tf.cast(y, x.dtype)


def attention_mask_bias(input_mask, dtype):
  """Additive attention bias from a padding mask.

  Args:
    input_mask: [batch_size, seq_length], 1 for real tokens, 0 for padding.
  Returns:
    [batch_size, 1, 1, seq_length]: 0 where attended, MASK_ADDER at padding.
  """
  mask = tf.cast(input_mask[:, tf.newaxis, tf.newaxis, :], dtype)
  return (1.0 - mask) * tf.cast(MASK_ADDER, dtype)


def swap_seq_and_heads(t, is_training):
  """[batch, seq, heads, head_size] <-> [batch, heads, seq, head_size]: axes 1 and 2 swapped.

  Inference graphs swap them with a one-operand einsum, which runs TensorFlow's own transpose
  kernel. With oneDNN on (TensorFlow's default on x86), tf.transpose becomes _MklTranspose, which
  cost ~0.15 ms more per call at serving sizes (batch 1 × 32, measured): four per layer made the
  head transposes the largest share of a small request. Same values, bit for bit. Training keeps
  tf.transpose, whose speed its benchmarks measured.
  """
  if is_training:
    return tf.transpose(t, [0, 2, 1, 3])
  return tf.einsum("abcd->acbd", t)


def self_attention(x, mask_bias, batch_size, seq_length, num_heads, dropout_rate,
                   initializer_range, is_training=True):
  """Multi-head self-attention on a flattened batch.

  Args:
    x: [batch_size * seq_length, hidden_size].
    mask_bias: [batch_size, 1, 1, seq_length].
    is_training: picks the head transposes' form (swap_seq_and_heads), not dropout.
  Returns:
    context: [batch_size * seq_length, hidden_size];
    probs: [batch_size, num_heads, seq_length, seq_length];
    scores: [batch_size, num_heads, seq_length, seq_length], the softmax's input: q·k/√d plus
    MASK_ADDER at padded keys.
  """
  width = int(x.shape[-1])
  head_size = width // num_heads

  def split_heads(t):
    t = tf.reshape(t, [batch_size, seq_length, num_heads, head_size])
    return swap_seq_and_heads(t, is_training)

  query = split_heads(dense(x, width, "query", initializer_range=initializer_range))
  key = split_heads(dense(x, width, "key", initializer_range=initializer_range))
  value = split_heads(dense(x, width, "value", initializer_range=initializer_range))

  scores = tf.matmul(query, key, transpose_b=True)
  scores = scores * tf.cast(1.0 / math.sqrt(head_size), scores.dtype) + mask_bias
  # Softmax in fp32: in fp16 the exponentials of large scores overflow.
  probs = tf.cast(tf.nn.softmax(tf.cast(scores, tf.float32)), x.dtype)
  context = tf.matmul(dropout(probs, dropout_rate), value)
  context = swap_seq_and_heads(context, is_training)
  return tf.reshape(context, [batch_size * seq_length, width]), probs, scores


class BertModel(object):
  """BERT encoder ("Bidirectional Encoder Representations from Transformers").

  Inputs are dynamic in batch and sequence length ([None, None]); every output shape below uses
  batch_size and seq_length for those runtime values.
  """

  def __init__(self, config, is_training, input_ids, input_mask=None, token_type_ids=None,
               use_one_hot_embeddings=False, scope=None, compute_dtype=tf.float32,
               row_blocks=True):
    """Builds the graph.

    Args:
      config: BertConfig.
      is_training: enables dropout.
      input_ids: int32 [batch_size, seq_length].
      input_mask: int32 [batch_size, seq_length], 1 for real tokens; all ones when None.
      token_type_ids: int32 [batch_size, seq_length]; all zeros when None.
      use_one_hot_embeddings: look embeddings up by one-hot matmul (faster on TPU), not gather.
      scope: variable scope, default "bert".
      compute_dtype: dtype of activations and matmuls (fp32, fp16 or bf16); layer norm and
        softmax still run in fp32.
      row_blocks: an inference graph may split a request's rows into two blocks for the CPU it
        will serve on (serving_cpu): True, this machine; a serving_cpu.ServingCpu, another;
        False: never (e.g. for GPU serving).
    """
    config = copy.deepcopy(config)
    if not is_training:
      config.hidden_dropout_prob = 0.0
      config.attention_probs_dropout_prob = 0.0
    self.config = config
    # The CPU the graph is built for (None: not built for one), the fewest rows (batch x
    # sequence) it splits into two blocks (None: never) and the threads per op it is meant to
    # be served with (0: TensorFlow's default).
    self.serving_cpu = (None if is_training or not row_blocks
                        else ServingCpu.this_machine() if row_blocks is True else row_blocks)
    self.row_blocks_from_rows = (self.serving_cpu.row_split_min_rows(config)
                                 if self.serving_cpu else None)
    self.serving_intra_op_threads = (self.serving_cpu.intra_op_threads(config)
                                     if self.serving_cpu else 0)

    input_ids = tf.convert_to_tensor(input_ids)
    shape = tf.shape(input_ids)
    batch_size, seq_length = shape[0], shape[1]
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)

    # Variables stay fp32 (dense() casts kernels to the activations' dtype), so checkpoints and
    # exports are the same whatever the precision.
    with tf1.variable_scope(scope, default_name="bert"):
      with tf1.variable_scope("embeddings"):
        self.embedding_output, self.embedding_table = embeddings(
            config, input_ids, token_type_ids, seq_length, use_one_hot_embeddings, is_training)
        # The encoder reads the embeddings after dropout; embedding_output stays without it, so
        # that a distillation match compares the student's embeddings with the teacher's
        # (dropout-free) ones: matched after inverted dropout, the expected squared error is
        # least at keep_prob x the teacher's values, a pull towards 0.9x the teacher's scale.
        # The fp32 embedding sum is cast once; everything after runs in compute_dtype.
        encoder_input = tf.cast(dropout(self.embedding_output, config.hidden_dropout_prob),
                                compute_dtype)

      with tf1.variable_scope("encoder"):
        mask_bias = attention_mask_bias(input_mask, compute_dtype)
        (self.all_encoder_layers, self.all_attention_probs,
         self.all_attention_scores) = transformer(config, encoder_input, mask_bias,
                                                  batch_size, seq_length, is_training,
                                                  self.row_blocks_from_rows)
      self.sequence_output = self.all_encoder_layers[-1]

      with tf1.variable_scope("pooler"):
        first_token = self.sequence_output[:, 0, :]
        self.pooled_output = dense(first_token, config.hidden_size, "dense", activation=tf.tanh,
                                   initializer_range=config.initializer_range)
    self.input_mask = input_mask
    _MODELS.setdefault(tf1.get_default_graph(), []).append(self)

  @staticmethod
  def built_in(graph=None):
    """The BertModels built in `graph` (default: the current one), in build order.

    How a loss reaches the student's intermediate tensors without the model_fn passing the model
    on (a teacher imported with import_graph_def is no BertModel and is not listed).
    """
    return list(_MODELS.get(graph or tf1.get_default_graph(), []))

  def get_pooled_output(self):
    """[batch_size, hidden_size]: tanh(dense) of the [CLS] position."""
    return self.pooled_output

  def get_sequence_output(self):
    """[batch_size, seq_length, hidden_size]: the last encoder layer."""
    return self.sequence_output

  def get_all_encoder_layers(self):
    """List of num_hidden_layers tensors [batch_size, seq_length, hidden_size]."""
    return self.all_encoder_layers

  def get_all_attention_probs(self):
    """List of num_hidden_layers tensors [batch_size, num_heads, seq_length, seq_length]."""
    return self.all_attention_probs

  def get_all_attention_scores(self):
    """List of num_hidden_layers tensors [batch_size, num_heads, seq_length, seq_length]: the
    scaled dot products q·k/√d plus MASK_ADDER at padded keys (the softmax's input)."""
    return self.all_attention_scores

  def get_input_mask(self):
    """int32 [batch_size, seq_length], 1 for real tokens."""
    return self.input_mask

  def get_embedding_output(self):
    """float32 [batch_size, seq_length, hidden_size]: word + position + type embeddings,
    normalised, before dropout (the encoder's input is this after dropout)."""
    return self.embedding_output

  def get_embedding_table(self):
    """[vocab_size, hidden_size]."""
    return self.embedding_table


def embeddings(config, input_ids, token_type_ids, seq_length, use_one_hot_embeddings,
               is_training=True):
  """Word + token-type + position embeddings, layer-normalised (the caller applies dropout).

  Returns:
    output: [batch_size, seq_length, hidden_size]; table: [vocab_size, hidden_size].
  """
  width = config.hidden_size
  init = create_initializer(config.initializer_range)
  table = tf1.get_variable("word_embeddings", [config.vocab_size, width], initializer=init)
  if use_one_hot_embeddings:
    one_hot = tf.one_hot(input_ids, depth=config.vocab_size, dtype=table.dtype)
    output = tf.einsum("bsv,vh->bsh", one_hot, table)
  else:
    output = tf.gather(table, input_ids)

  type_table = tf1.get_variable("token_type_embeddings", [config.type_vocab_size, width],
                                initializer=init)
  if is_training:
    # In training a one-hot matmul is cheaper than a gather (and its sparse gradient) for the
    # 2- or 16-row type table.
    type_one_hot = tf.one_hot(token_type_ids, depth=config.type_vocab_size,
                              dtype=type_table.dtype)
    output += tf.einsum("bst,th->bsh", type_one_hot, type_table)
  else:
    # In inference the gather is one cheap op; the einsum became a oneDNN _MklEinsum, one of
    # the costliest ops of a batch 1 × 32 request in a per-op trace. The same rows, bit for bit.
    output += tf.gather(type_table, token_type_ids)

  position_table = tf1.get_variable("position_embeddings",
                                    [config.max_position_embeddings, width], initializer=init)
  output += tf.slice(position_table, [0, 0], [seq_length, -1])[tf.newaxis]

  return layer_norm(output, is_training=is_training), table


def row_block_sizes(rows, min_rows):
  """Block sizes, int32 [2]: halves of `rows` from `min_rows` rows on, else [rows, 0]."""
  half = rows // 2
  return tf.where(rows >= min_rows, tf.stack([half, rows - half]), tf.stack([rows, 0]))


def split_row_blocks(t, sizes):
  """t: [rows, width] as [t] (sizes None) or as two blocks of sizes[0] and sizes[1] rows."""
  return [t] if sizes is None else tf.split(t, sizes, num=2, axis=0)


def token_wise(config, context, residual, is_training):
  """A layer after its self-attention core, row by row: attention output, feed-forward, norms.

  Args:
    context: [rows, hidden_size], the attention's per-head contexts, heads concatenated.
    residual: [rows, hidden_size], the layer's input for the same rows.
  Returns:
    [rows, hidden_size], the layer's output.
  """
  init_range = config.initializer_range
  with tf1.variable_scope("attention"):
    with tf1.variable_scope("output"):
      attended = dense(context, config.hidden_size, "dense", initializer_range=init_range)
      attended = layer_norm(dropout(attended, config.hidden_dropout_prob) + residual,
                            is_training=is_training)
  with tf1.variable_scope("intermediate"):
    inner = dense(attended, config.intermediate_size, "dense",
                  activation=get_activation(config.hidden_act), initializer_range=init_range)
  with tf1.variable_scope("output"):
    out = dense(inner, config.hidden_size, "dense", initializer_range=init_range)
    return layer_norm(dropout(out, config.hidden_dropout_prob) + attended,
                      is_training=is_training)


def transformer(config, embedding_output, mask_bias, batch_size, seq_length, is_training=True,
                row_blocks_from_rows=None):
  """The encoder stack, computed on [batch_size * seq_length, hidden_size] matrices.

  Each layer's token-wise part runs on all rows at once, or in two row blocks for requests of
  row_blocks_from_rows rows or more (BertModel sets it for inference graphs: serving_cpu;
  same variables, same values to rounding).

  Returns:
    layers: list of [batch_size, seq_length, hidden_size], one per layer;
    attention_probs, attention_scores: lists of [batch_size, num_heads, seq_length, seq_length].
  """
  width = config.hidden_size
  x = tf.reshape(embedding_output, [-1, width])
  sizes = (None if row_blocks_from_rows is None
           else row_block_sizes(batch_size * seq_length, row_blocks_from_rows))
  layers, probs, scores = [], [], []
  for index in range(config.num_hidden_layers):
    with tf1.variable_scope("layer_%d" % index) as layer_scope:
      with tf1.variable_scope("attention"):
        with tf1.variable_scope("self"):
          context, layer_probs, layer_scores = self_attention(
              x, mask_bias, batch_size, seq_length, config.num_attention_heads,
              config.attention_probs_dropout_prob, config.initializer_range, is_training)
      outputs = []
      blocks = zip(split_row_blocks(context, sizes), split_row_blocks(x, sizes))
      for block, (context_rows, x_rows) in enumerate(blocks):
        with tf1.variable_scope(layer_scope, reuse=True if block else None):
          outputs.append(token_wise(config, context_rows, x_rows, is_training))
      x = outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=0)
    layers.append(tf.reshape(x, [batch_size, seq_length, width]))
    probs.append(layer_probs)
    scores.append(layer_scores)
  return layers, probs, scores


def forward_flops_per_token(config, seq_length):
  """Multiply-adds ×2 per token of one encoder forward pass, embeddings excluded."""
  h, i = config.hidden_size, config.intermediate_size
  dense_flops = 2 * (4 * h * h + 2 * h * i)
  attention_flops = 2 * 2 * seq_length * h  # scores and context
  return config.num_hidden_layers * (dense_flops + attention_flops)
