"""BertModel: Google's variable names and shapes, dynamic shapes, masking, checkpoints, config."""

import math

import numpy as np
import pytest
import tensorflow as tf

from bert import modeling, serving_cpu

import conftest

conftest.use_exact_float32()

tf1 = tf.compat.v1

CONFIG = dict(vocab_size=23, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
              intermediate_size=20, hidden_act="gelu", hidden_dropout_prob=0.1,
              attention_probs_dropout_prob=0.1, max_position_embeddings=17, type_vocab_size=2,
              initializer_range=0.02)


def config(**overrides):
  values = dict(CONFIG, **overrides)
  return modeling.BertConfig.from_dict(values)


def expected_variables(vocab=23, hidden=12, layers=2, inner=20, positions=17, types=2):
  """Google's BERT variable names and shapes, written out."""
  expected = {
      "bert/embeddings/word_embeddings": [vocab, hidden],
      "bert/embeddings/token_type_embeddings": [types, hidden],
      "bert/embeddings/position_embeddings": [positions, hidden],
      "bert/embeddings/LayerNorm/gamma": [hidden],
      "bert/embeddings/LayerNorm/beta": [hidden],
      "bert/pooler/dense/kernel": [hidden, hidden],
      "bert/pooler/dense/bias": [hidden],
  }
  for n in range(layers):
    p = "bert/encoder/layer_%d/" % n
    expected.update({
        p + "attention/self/query/kernel": [hidden, hidden],
        p + "attention/self/query/bias": [hidden],
        p + "attention/self/key/kernel": [hidden, hidden],
        p + "attention/self/key/bias": [hidden],
        p + "attention/self/value/kernel": [hidden, hidden],
        p + "attention/self/value/bias": [hidden],
        p + "attention/output/dense/kernel": [hidden, hidden],
        p + "attention/output/dense/bias": [hidden],
        p + "attention/output/LayerNorm/gamma": [hidden],
        p + "attention/output/LayerNorm/beta": [hidden],
        p + "intermediate/dense/kernel": [hidden, inner],
        p + "intermediate/dense/bias": [inner],
        p + "output/dense/kernel": [inner, hidden],
        p + "output/dense/bias": [hidden],
        p + "output/LayerNorm/gamma": [hidden],
        p + "output/LayerNorm/beta": [hidden],
    })
  return expected


def build(cfg, is_training=False, compute_dtype=tf.float32, scope=None):
  """Placeholders [None, None] and a BertModel in the current graph."""
  ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
  mask = tf1.placeholder(tf.int32, [None, None], name="input_mask")
  types = tf1.placeholder(tf.int32, [None, None], name="segment_ids")
  model = modeling.BertModel(cfg, is_training, ids, mask, types, compute_dtype=compute_dtype,
                             scope=scope)
  return (ids, mask, types), model


def feed(placeholders, ids, mask=None, types=None):
  ids = np.asarray(ids, np.int32)
  mask = np.ones_like(ids) if mask is None else np.asarray(mask, np.int32)
  types = np.zeros_like(ids) if types is None else np.asarray(types, np.int32)
  return dict(zip(placeholders, (ids, mask, types)))


def test_variable_names_and_shapes_are_googles():
  with tf.Graph().as_default():
    build(config())
    actual = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    assert all(v.dtype.base_dtype == tf.float32 for v in tf1.global_variables())
  assert actual == expected_variables()
  assert modeling.count_parameters(config()) == sum(
      int(np.prod(s)) for s in expected_variables().values())


def test_dynamic_batch_and_sequence_length():
  with tf.Graph().as_default():
    placeholders, model = build(config())
    fetches = [model.get_sequence_output(), model.get_pooled_output()]
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      rng = np.random.RandomState(0)
      for batch, length in ((2, 5), (3, 9)):
        ids = rng.randint(0, 23, size=[batch, length])
        types = rng.randint(0, 2, size=[batch, length])
        sequence, pooled = session.run(fetches, feed(placeholders, ids, types=types))
        assert sequence.shape == (batch, length, 12)
        assert pooled.shape == (batch, 12)
        assert np.all(np.isfinite(sequence))


def test_padding_does_not_change_real_positions():
  with tf.Graph().as_default():
    placeholders, model = build(config())
    fetches = [model.get_sequence_output(), model.get_pooled_output()]
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      ids = [[2, 7, 9, 11, 3]]
      types = [[0, 0, 0, 1, 1]]
      alone_seq, alone_pooled = session.run(fetches, feed(placeholders, ids, types=types))
      # Padded with garbage ids and segment ids under mask 0.
      padded_ids = [[2, 7, 9, 11, 3, 19, 22, 5, 1]]
      padded_types = [[0, 0, 0, 1, 1, 1, 0, 1, 1]]
      mask = [[1, 1, 1, 1, 1, 0, 0, 0, 0]]
      padded_seq, padded_pooled = session.run(
          fetches, feed(placeholders, padded_ids, mask, padded_types))
  np.testing.assert_allclose(padded_seq[:, :5], alone_seq, atol=1e-5, rtol=0)
  np.testing.assert_allclose(padded_pooled, alone_pooled, atol=1e-5, rtol=0)
  # The garbage positions themselves are different: the comparison is not vacuous.
  assert not np.allclose(padded_seq[:, 5:6], alone_seq[:, 4:5], atol=1e-3)


def test_google_checkpoint_loads_through_init_from_checkpoint(tmp_path):
  ids = [[2, 5, 8, 3, 0], [2, 9, 3, 0, 0]]
  mask = [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
  prefix = str(tmp_path / "bert_model.ckpt")
  with tf.Graph().as_default():
    tf1.set_random_seed(1)
    placeholders, model = build(config())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      expected = session.run(model.get_pooled_output(), feed(placeholders, ids, mask))
      tf1.train.Saver().save(session, prefix)
  saved = dict(tf.train.list_variables(prefix))
  assert saved == expected_variables()

  with tf.Graph().as_default():
    tf1.set_random_seed(2)  # different initial values, overwritten by the checkpoint
    placeholders, model = build(config())
    tf1.train.init_from_checkpoint(prefix, {"bert/": "bert/"})
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      actual = session.run(model.get_pooled_output(), feed(placeholders, ids, mask))
  np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0)


def test_one_hot_embeddings_equal_gather():
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    gathered = modeling.BertModel(config(), False, ids, scope="bert")
    with tf1.variable_scope("", reuse=True):
      one_hot = modeling.BertModel(config(), False, ids, use_one_hot_embeddings=True,
                                   scope="bert")
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      a, b = session.run([gathered.get_sequence_output(), one_hot.get_sequence_output()],
                         {ids: [[2, 22, 0, 3]]})
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_init_checkpoint_with_layer_map_takes_the_mapped_layers(tmp_path):
  from bert import checkpoint_init
  from bert.errors import UsageError
  prefix = str(tmp_path / "teacher.ckpt")
  with tf.Graph().as_default():
    build(config(num_hidden_layers=3))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(session, prefix)
  with tf.Graph().as_default():
    build(config(num_hidden_layers=2))
    assignment = checkpoint_init.init_from_checkpoint(str(tmp_path), layer_map=[0, 2])
    assert len(assignment) == len(expected_variables())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      values = {v.op.name: session.run(v) for v in tf1.global_variables()}
  for student_layer, teacher_layer in ((0, 0), (1, 2)):
    name = "bert/encoder/layer_%d/attention/self/query/kernel"
    np.testing.assert_array_equal(values[name % student_layer],
                                  tf.train.load_variable(prefix, name % teacher_layer))
  np.testing.assert_array_equal(values["bert/embeddings/word_embeddings"],
                                tf.train.load_variable(prefix, "bert/embeddings/word_embeddings"))
  with tf.Graph().as_default():
    build(config(num_hidden_layers=2))
    with pytest.raises(UsageError, match="no layer 5"):
      checkpoint_init.init_from_checkpoint(prefix, layer_map=[0, 5])
  with tf.Graph().as_default():
    build(config(hidden_size=24))
    with pytest.raises(UsageError,
                       match=r"variable bert/\S+ has shape \[12\], the model expects \[24\]"):
      checkpoint_init.init_from_checkpoint(prefix)


def test_config_from_dict_keeps_extra_keys_and_round_trips(tmp_path):
  released = dict(CONFIG, directionality="bidi", pooler_fc_size=768, pooler_num_attention_heads=12,
                  pooler_num_fc_layers=3, pooler_size_per_head=128,
                  pooler_type="first_token_transform", model_type="bert")
  cfg = modeling.BertConfig.from_dict(released)
  assert cfg.directionality == "bidi"
  assert cfg.pooler_fc_size == 768
  assert cfg.to_dict() == released
  path = tmp_path / "bert_config.json"
  path.write_text(cfg.to_json_string(), encoding="utf-8")
  again = modeling.BertConfig.from_json_file(str(path))
  assert again.to_dict() == released
  # Extra keys do not change the architecture, so the checkpoint is shared.
  assert again.architecture() == config().architecture()


@pytest.mark.parametrize("overrides, words", [
    ({"hidden_size": 10, "num_attention_heads": 3}, ["hidden_size", "num_attention_heads",
                                                     "divisible"]),
    ({"hidden_act": "gelu_fancy"}, ["hidden_act", "gelu_fancy"]),
    ({"num_hidden_layers": 0}, ["num_hidden_layers"]),
    ({"hidden_dropout_prob": 1.5}, ["hidden_dropout_prob"]),
])
def test_config_errors_name_the_problem(overrides, words):
  with pytest.raises(ValueError) as info:
    modeling.BertConfig.from_dict(dict(CONFIG, **overrides))
  for word in words:
    assert word in str(info.value)


def test_config_missing_vocab_size_and_bad_json(tmp_path):
  with pytest.raises(ValueError, match="vocab_size"):
    modeling.BertConfig.from_dict({"hidden_size": 12})
  path = tmp_path / "bad.json"
  path.write_text("{not json", encoding="utf-8")
  with pytest.raises(ValueError, match="bad.json"):
    modeling.BertConfig.from_json_file(str(path))


def test_gelu_is_exact_erf_gelu():
  xs = np.linspace(-6.0, 6.0, 97).astype(np.float64)
  expected = np.array([0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))) for x in xs])
  with tf.Graph().as_default():
    out = modeling.gelu(tf.constant(xs, tf.float64))
    out32 = modeling.gelu(tf.constant(xs, tf.float32))
    with tf1.Session() as session:
      actual, actual32 = session.run([out, out32])
  np.testing.assert_allclose(actual, expected, atol=1e-7, rtol=0)
  np.testing.assert_allclose(actual32, expected, atol=1e-6, rtol=0)
  # The tanh approximation differs by more than that around |x| ~ 2.
  approx = 0.5 * xs * (1 + np.tanh(math.sqrt(2 / math.pi) * (xs + 0.044715 * xs ** 3)))
  assert np.max(np.abs(approx - expected)) > 1e-4
  assert modeling.get_activation("GELU") is modeling.gelu


def test_attention_probs_accessor():
  with tf.Graph().as_default():
    placeholders, model = build(config())
    probs_tensors = model.get_all_attention_probs()
    assert len(probs_tensors) == 2
    layers = model.get_all_encoder_layers()
    assert len(layers) == 2
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      ids = [[2, 5, 8, 3, 0, 0], [2, 9, 10, 11, 12, 3]]
      mask = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
      probs = session.run(probs_tensors, feed(placeholders, ids, mask))
  for layer in probs:
    assert layer.shape == (2, 3, 6, 6)
    np.testing.assert_allclose(layer.sum(axis=-1), 1.0, atol=1e-5)
    assert np.max(layer[0, :, :, 4:]) < 1e-6  # masked keys of example 0
    assert np.min(layer[0, :, :, :4]) > 1e-4
    assert np.min(layer[1]) > 1e-4  # nothing masked in example 1


def test_bf16_compute_builds_runs_and_keeps_fp32_variables():
  ids = [[2, 5, 8, 3, 0], [2, 9, 3, 0, 0]]
  mask = [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]
  with tf.Graph().as_default():
    tf1.set_random_seed(4)
    placeholders, model = build(config())
    with tf1.variable_scope("", reuse=True):
      _, model16 = build(config(), compute_dtype=tf.bfloat16, scope="bert")
    variables = tf1.global_variables()
    assert len(variables) == len(expected_variables())  # shared, not duplicated
    assert all(v.dtype.base_dtype == tf.float32 for v in variables)
    assert model16.get_sequence_output().dtype == tf.bfloat16
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      values = feed(placeholders, ids, mask)
      ph16 = [tf1.get_default_graph().get_tensor_by_name(n + "_1:0")
              for n in ("input_ids", "input_mask", "segment_ids")]
      values.update(feed(ph16, ids, mask))
      pooled32, pooled16 = session.run([model.get_pooled_output(), model16.get_pooled_output()],
                                       values)
  pooled16 = pooled16.astype(np.float32)
  assert np.all(np.isfinite(pooled16))
  np.testing.assert_allclose(pooled16, pooled32, atol=0.05)


def test_training_mode_dropout_changes_outputs_and_eval_is_deterministic():
  with tf.Graph().as_default():
    placeholders, model = build(config(), is_training=True)
    with tf1.variable_scope("", reuse=True):
      ph_eval = [tf1.placeholder(tf.int32, [None, None]) for _ in range(3)]
      eval_model = modeling.BertModel(config(), False, *ph_eval, scope="bert")
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      ids = [[2, 5, 8, 3]]
      train_a = session.run(model.get_sequence_output(), feed(placeholders, ids))
      train_b = session.run(model.get_sequence_output(), feed(placeholders, ids))
      eval_a = session.run(eval_model.get_sequence_output(), feed(ph_eval, ids))
      eval_b = session.run(eval_model.get_sequence_output(), feed(ph_eval, ids))
  assert not np.allclose(train_a, train_b)
  np.testing.assert_array_equal(eval_a, eval_b)


def test_embedding_output_is_before_dropout_so_a_match_sees_no_dropout_noise():
  """What an embedding match reads equals the teacher-side (inference) embeddings in training
  mode too; the encoder still gets them with dropout. Matched after inverted dropout, an MSE is
  least at keep_prob x the teacher's values, not at the teacher's."""
  with tf.Graph().as_default():
    placeholders, model = build(config(hidden_dropout_prob=0.5,
                                       attention_probs_dropout_prob=0.0), is_training=True)
    with tf1.variable_scope("", reuse=True):
      ph_eval = [tf1.placeholder(tf.int32, [None, None]) for _ in range(3)]
      eval_model = modeling.BertModel(config(), False, *ph_eval, scope="bert")
    assert model.get_embedding_output().dtype == tf.float32
    first_layer_input = tf1.get_default_graph().get_tensor_by_name(
        "bert/encoder/Reshape:0")
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      ids = [[2, 5, 8, 3, 1]]
      train_a, input_a = session.run([model.get_embedding_output(), first_layer_input],
                                     feed(placeholders, ids))
      train_b, input_b = session.run([model.get_embedding_output(), first_layer_input],
                                     feed(placeholders, ids))
      served = session.run(eval_model.get_embedding_output(), feed(ph_eval, ids))
  np.testing.assert_allclose(train_a, served, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(train_a, train_b)
  # The encoder's input: about half the values zeroed, the rest doubled, a new mask each run.
  dropped = input_a.reshape(train_a.shape) == 0
  assert 0.2 < dropped.mean() < 0.8
  np.testing.assert_allclose(input_a.reshape(train_a.shape)[~dropped], 2 * train_a[~dropped],
                             rtol=1e-5, atol=1e-6)
  assert not np.array_equal(input_a, input_b)


@pytest.mark.parametrize("rate,dtype,shape", [(0.1, tf.float32, [64, 33, 7]),
                                              (0.5, tf.bfloat16, [3, 1001]),
                                              (0.02, tf.float16, [5, 3, 11])])
def test_dropout_drops_at_its_rate_keeps_the_expectation_and_reproduces_under_a_graph_seed(
    rate, dtype, shape):
  """Two 16-bit draws per random word: the rate is rounded to 1/65536, the scale follows it."""
  def run_twice():
    with tf.Graph().as_default():
      tf1.set_random_seed(7)
      out = modeling.dropout(tf.ones(shape, dtype), rate)
      with tf1.Session() as session:
        return [session.run(tf.cast(out, tf.float32)) for _ in range(2)]

  first, second = run_twice()
  again, _ = run_twice()
  kept_rate = round(rate * 65536) / 65536
  scale = np.float32(tf.cast(1.0 / (1.0 - kept_rate), dtype).numpy())
  assert first.shape == tuple(shape)
  assert set(np.unique(first)) <= {0.0, scale}  # dropped, or kept and scaled
  dropped = np.mean(first == 0)
  tolerance = 4 * math.sqrt(rate * (1 - rate) / first.size)  # 4 standard deviations
  assert abs(dropped - rate) < tolerance, (dropped, rate)
  assert not np.array_equal(first, second)  # a new mask on every run
  np.testing.assert_array_equal(first, again)  # the same masks under the same graph seed
  with tf.Graph().as_default():
    unchanged = tf.ones(shape, dtype)
    assert modeling.dropout(unchanged, 0.0) is unchanged  # no ops at rate 0 (inference graphs)


def test_dropout_masks_are_uniform_across_positions():
  """Both halves of each random word are used: even and odd positions drop alike, and masks of
  neighbouring elements are independent (no pairing of the two 16-bit halves)."""
  with tf.Graph().as_default():
    tf1.set_random_seed(3)
    out = modeling.dropout(tf.ones([200000]), 0.3)
    with tf1.Session() as session:
      dropped = session.run(out) == 0
  tolerance = 4 * math.sqrt(0.3 * 0.7 / 100000)
  assert abs(dropped[0::2].mean() - 0.3) < tolerance
  assert abs(dropped[1::2].mean() - 0.3) < tolerance
  both = np.mean(dropped[0::2] & dropped[1::2])
  assert abs(both - 0.09) < 4 * math.sqrt(0.09 * 0.91 / 100000)


XEON_L2, EPYC_L2 = 2 * 2 ** 20, 2 ** 20  # bytes per core, as Eigen reads them from the CPU
# Built for 4 cores (TensorFlow's default intra-op pool), rows split by the L2 rule.
XEON_4 = serving_cpu.ServingCpu(XEON_L2, 4)


@pytest.mark.parametrize("rows_split", ["never", "not at 3 x 7", "at 3 x 7"])
def test_inference_graph_forms_give_the_training_graphs_values(monkeypatch, rows_split):
  """Inference swaps heads with a one-operand einsum, gathers token types (fewer oneDNN ops at
  small batches), normalises the centred input directly and may run each layer's token-wise part
  in two row blocks; with dropout off it computes what the training graph computes, to float
  rounding, whether the rows are split or not, and with a block of no rows (1 x 1)."""
  row_blocks = False if rows_split == "never" else XEON_4
  if rows_split == "at 3 x 7":
    monkeypatch.setattr(serving_cpu, "ROW_SPLIT_MIN_WORK", 1)
  cfg = config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  min_rows = row_blocks.row_split_min_rows(cfg) if row_blocks else None
  assert (min_rows is None) == (rows_split == "never")
  assert (min_rows is not None and min_rows <= 21) == (rows_split == "at 3 x 7")
  with tf.Graph().as_default() as graph:
    placeholders, train_model = build(cfg, is_training=True)
    with tf1.variable_scope("", reuse=True):
      ph_infer = [tf1.placeholder(tf.int32, [None, None]) for _ in range(3)]
      infer_model = modeling.BertModel(cfg, False, *ph_infer, scope="bert", row_blocks=row_blocks)
    assert infer_model.row_blocks_from_rows == min_rows
    rng = np.random.RandomState(3)
    ids = rng.randint(0, 23, size=[3, 7])
    types = rng.randint(0, 2, size=[3, 7])
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    values = feed(placeholders, ids, mask, types)
    values.update(feed(ph_infer, ids, mask, types))
    one_token = feed(placeholders, ids[:1, :1], mask[:1, :1], types[:1, :1])
    one_token.update(feed(ph_infer, ids[:1, :1], mask[:1, :1], types[:1, :1]))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      # Non-trivial type embeddings, so that a wrong row would show.
      table = [v for v in tf1.global_variables() if "token_type" in v.name][0]
      table.load(rng.normal(size=table.shape.as_list()), session)
      fetches = [[m.get_sequence_output(), m.get_pooled_output(), m.get_all_attention_probs()[-1]]
                 for m in (train_model, infer_model)]
      trained, inferred = session.run(fetches, values)
      trained_one, inferred_one = session.run(fetches, one_token)
    train_ops = [op.type for op in graph.get_operations() if op.name.startswith("bert/")]
    infer_ops = [op.type for op in graph.get_operations() if op.name.startswith("bert_1/")]
  for a, b in zip(trained + trained_one, inferred + inferred_one):
    np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)
  assert trained_one[0].shape == (1, 1, cfg.hidden_size)
  layers = cfg.num_hidden_layers
  # A second block has its own attention output, intermediate and output matmuls.
  assert infer_ops.count("MatMul") - train_ops.count("MatMul") == (0 if min_rows is None
                                                                   else 3 * layers)
  assert infer_ops.count("SplitV") == (0 if min_rows is None else 2 * layers)
  assert {"Transpose", "OneHot"} <= set(train_ops)
  assert not {"Transpose", "OneHot"} & set(infer_ops)
  assert infer_ops.count("Einsum") == 4 * cfg.num_hidden_layers  # q, k, v and the context
  assert infer_ops.count("ResourceGather") == train_ops.count("ResourceGather") + 1


TEACHER = dict(hidden_size=256, intermediate_size=1024, num_attention_heads=4)
STUDENT = dict(hidden_size=128, intermediate_size=512, num_attention_heads=2)
MINILM = dict(hidden_size=384, intermediate_size=1536, num_attention_heads=12)
BASE = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12)


@pytest.mark.parametrize("l2_bytes", [XEON_L2, EPYC_L2])
def test_with_the_default_pool_rows_split_where_blocks_fit_the_single_thread_zone(l2_bytes):
  """TF's oneDNN rule: a matmul runs on one thread when 4 bytes x (m·n + k·(m + n)) < L2 per
  core. With TensorFlow's default intra-op pool (more than 2 cores, or models wider than 256),
  rows split where half the fewest rows of a split, times the feed-forward weights, fit the
  serving CPU's L2; from enough work per request (rows x width^2)."""
  cpu = serving_cpu.ServingCpu(l2_bytes, 4)
  def fits(rows, hidden, inner):
    return 4 * (rows * (hidden + inner) + hidden * inner) < l2_bytes
  teacher, student, minilm, base = (config(**c) for c in (TEACHER, STUDENT, MINILM, BASE))
  # On a 2 MiB Xeon the teacher splits from batch 1 x 32; on a 1 MiB EPYC its feed-forward
  # weights alone (1 MiB) fill the L2, its matmuls run multi-threaded, and it never splits.
  assert cpu.row_split_min_rows(teacher) == (32 if l2_bytes == XEON_L2 else None)
  assert cpu.row_split_min_rows(student) == 128  # from 1 x 128, not 1 x 32
  assert cpu.row_split_min_rows(minilm) is None  # its weights alone: 2.25 MiB
  assert cpu.row_split_min_rows(base) is None
  assert serving_cpu.ServingCpu(None, 4).row_split_min_rows(student) is None  # L2 unknown
  for cfg in (teacher, student, minilm, base):
    assert cpu.intra_op_threads(cfg) == 0
    low = cpu.row_split_min_rows(cfg)
    if low is None:
      assert not fits(-(-serving_cpu.ROW_SPLIT_MIN_WORK // cfg.hidden_size ** 2 // 2),
                      cfg.hidden_size, cfg.intermediate_size)
      continue
    assert fits(low // 2, cfg.hidden_size, cfg.intermediate_size)
    assert low * cfg.hidden_size ** 2 >= serving_cpu.ROW_SPLIT_MIN_WORK
    assert (low - 1) * cfg.hidden_size ** 2 < serving_cpu.ROW_SPLIT_MIN_WORK


@pytest.mark.parametrize("l2_bytes", [XEON_L2, EPYC_L2, None])
def test_on_two_cores_small_models_run_one_thread_per_op_and_always_split(l2_bytes):
  """On 2 cores, models up to 256 wide are served with one thread per op; their two row blocks
  are then the two cores' work, whatever the L2, from the work minimum on. Wider models keep
  the default pool and the L2 rule; one core never splits."""
  two = serving_cpu.ServingCpu(l2_bytes, 2)
  teacher, student, minilm = (config(**c) for c in (TEACHER, STUDENT, MINILM))
  assert [two.intra_op_threads(c) for c in (teacher, student, minilm)] == [1, 1, 0]
  assert (two.row_split_min_rows(teacher), two.row_split_min_rows(student)) == (32, 128)
  assert two.row_split_min_rows(minilm) is None
  one = serving_cpu.ServingCpu(l2_bytes, 1)
  assert [one.intra_op_threads(c) for c in (teacher, student)] == [0, 0]
  assert [one.row_split_min_rows(c) for c in (teacher, student)] == [None, None]


def test_l2_cache_is_read_per_core_from_the_level_2_entry(tmp_path):
  """sysfs lists a core's caches as index0..N (level, type, size); the L2 is the unified or
  data cache of level 2, in K or M; a machine without the listing gives None (never split)."""
  entries = [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"),
             ("3", "Unified", "105M")]
  for number, (level, kind, size) in enumerate(entries):
    entry = tmp_path / "xeon" / ("index%d" % number)
    entry.mkdir(parents=True)
    for name, text in (("level", level), ("type", kind), ("size", size)):
      (entry / name).write_text(text + "\n")
  assert serving_cpu.l2_cache_bytes(str(tmp_path / "xeon")) == 2 * 2 ** 20
  (tmp_path / "xeon" / "index2" / "size").write_text("1M\n")
  assert serving_cpu.l2_cache_bytes(str(tmp_path / "xeon")) == 2 ** 20
  assert serving_cpu.l2_cache_bytes(str(tmp_path / "absent")) is None
  # BertModel's default builds for this machine; training graphs never split.
  cfg = config()
  here = serving_cpu.ServingCpu.this_machine()
  assert (here.l2_bytes, here.cores) == (serving_cpu.l2_cache_bytes(), serving_cpu.usable_cores())
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    serving = modeling.BertModel(cfg, False, ids, scope="serving")
    training = modeling.BertModel(cfg, True, ids, scope="training", row_blocks=XEON_4)
  assert serving.serving_cpu.to_json() == here.to_json()
  assert serving.row_blocks_from_rows == here.row_split_min_rows(cfg)
  assert serving.serving_intra_op_threads == here.intra_op_threads(cfg)
  assert (training.serving_cpu, training.row_blocks_from_rows) == (None, None)
  assert training.serving_intra_op_threads == 0


def test_row_block_sizes_halve_from_the_minimum_rows_on():
  with tf.Graph().as_default():
    rows = tf1.placeholder(tf.int32, [])
    sizes = modeling.row_block_sizes(rows, 32)
    with tf1.Session() as session:
      got = {n: session.run(sizes, {rows: n}).tolist() for n in (1, 31, 32, 33, 4096)}
  assert got == {1: [1, 0], 31: [31, 0], 32: [16, 16], 33: [16, 17], 4096: [2048, 2048]}
