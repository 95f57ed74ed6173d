"""Learning-rate schedule, decoupled weight decay exclusions, and dynamic loss scaling."""

import numpy as np
import pytest
import tensorflow as tf

from bert import optimization

import conftest

conftest.use_exact_float32()

tf1 = tf.compat.v1


def schedule_values(init_lr, num_train_steps, num_warmup_steps, steps):
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    lr = optimization.learning_rate_schedule(step, init_lr, num_train_steps, num_warmup_steps)
    with tf1.Session() as session:
      return [float(session.run(lr, {step: s})) for s in steps]


def test_learning_rate_warmup_peak_and_end():
  init_lr, total, warmup = 2e-4, 100, 10
  at = dict(zip([0, 5, 10, 55, 100, 120],
                schedule_values(init_lr, total, warmup, [0, 5, 10, 55, 100, 120])))
  assert at[0] == pytest.approx(0.0, abs=1e-12)
  assert at[5] == pytest.approx(init_lr / 2, rel=1e-6)     # halfway through warmup
  assert at[10] == pytest.approx(init_lr, rel=1e-6)        # peak at num_warmup_steps
  assert at[55] == pytest.approx(init_lr / 2, rel=1e-6)    # halfway through the decay
  assert at[100] == pytest.approx(0.0, abs=1e-12)          # end of training
  assert at[120] == pytest.approx(0.0, abs=1e-12)          # past the end: never negative


def test_learning_rate_without_warmup_decays_linearly():
  values = schedule_values(1e-3, 40, 0, [0, 10, 20, 40])
  np.testing.assert_allclose(values, [1e-3, 7.5e-4, 5e-4, 0.0], rtol=1e-6, atol=1e-12)


def test_learning_rate_is_monotonic_up_then_down():
  values = schedule_values(5e-5, 50, 7, list(range(0, 51)))
  peak = int(np.argmax(values))
  assert peak == 7
  assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))
  assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))


def _weights_after_one_step(names, weight_decay_rate=0.1, lr=0.5):
  """One optimizer step where every variable has a zero gradient; returns {name: value}."""
  with tf.Graph().as_default():
    params = {}
    for name in names:
      scope, _, leaf = name.rpartition("/")
      with tf1.variable_scope(scope or tf1.get_variable_scope(), reuse=tf1.AUTO_REUSE):
        params[name] = tf1.get_variable(leaf, [3], initializer=tf1.constant_initializer(2.0))
    # The loss does not depend on the parameters: all gradients are zero.
    dummy = tf1.get_variable("dummy_input", [], trainable=False,
                             initializer=tf1.constant_initializer(1.0))
    loss = dummy * 3.0
    train_op, _, _ = optimization.create_optimizer(
        loss, lr, num_train_steps=10, num_warmup_steps=0, weight_decay_rate=weight_decay_rate,
        tvars=list(params.values()))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(train_op)
      values = session.run(params)
      slots = {v.op.name for v in tf1.global_variables()}
  return values, slots


def test_weight_decay_skips_layer_norm_and_bias():
  names = ["bert/encoder/layer_0/attention/output/dense/kernel",
           "bert/encoder/layer_0/attention/output/dense/bias",
           "bert/encoder/layer_0/output/LayerNorm/gamma",
           "bert/encoder/layer_0/output/LayerNorm/beta",
           "bert/embeddings/word_embeddings",
           "output_weights",
           "output_bias"]
  values, slots = _weights_after_one_step(names, weight_decay_rate=0.1, lr=0.5)
  decayed = 2.0 - 0.5 * 0.1 * 2.0
  for name in ("bert/encoder/layer_0/attention/output/dense/kernel",
               "bert/embeddings/word_embeddings", "output_weights"):
    np.testing.assert_allclose(values[name], decayed, rtol=1e-6, err_msg=name)
  for name in ("bert/encoder/layer_0/attention/output/dense/bias",
               "bert/encoder/layer_0/output/LayerNorm/gamma",
               "bert/encoder/layer_0/output/LayerNorm/beta", "output_bias"):
    np.testing.assert_array_equal(values[name], 2.0, err_msg=name)
  # Google's slot names, so checkpoints resume across implementations.
  assert "output_weights/adam_m" in slots and "output_weights/adam_v" in slots
  assert "bert/embeddings/word_embeddings/adam_m" in slots
  assert "global_step" in slots


def test_no_weight_decay_rate_leaves_zero_gradient_weights_alone():
  values, _ = _weights_after_one_step(["dense/kernel"], weight_decay_rate=0.0)
  np.testing.assert_array_equal(values["dense/kernel"], 2.0)


def test_adam_step_matches_numpy():
  """One step of Google's AdamWeightDecay (no bias correction) with a known gradient."""
  with tf.Graph().as_default():
    w = tf1.get_variable("w", [2], initializer=tf1.constant_initializer([1.0, -2.0]))
    loss = tf.reduce_sum(w * tf.constant([0.3, -0.4]))  # gradient [0.3, -0.4], norm 0.5
    train_op, lr, finite = optimization.create_optimizer(
        loss, 0.1, num_train_steps=100, num_warmup_steps=0, weight_decay_rate=0.01,
        bias_correction=False)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      _, lr_value, finite_value = session.run([train_op, lr, finite])
      new_w, step = session.run([w, tf1.train.get_global_step()])
  g = np.array([0.3, -0.4])
  m, v = 0.1 * g, 0.001 * g * g
  expected = np.array([1.0, -2.0]) - 0.1 * (m / (np.sqrt(v) + 1e-6) + 0.01 * np.array([1.0, -2.0]))
  assert lr_value == pytest.approx(0.1)
  assert finite_value
  assert step == 1
  np.testing.assert_allclose(new_w, expected, rtol=1e-5)


def _numpy_adamw(w0, grads, lrs, bias_correction, weight_decay_rate=0.01, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-6, clip_norm=1.0):
  """Reference AdamW on given per-step gradients (clipped by global norm as Google's BERT)."""
  w, m, v, trajectory = np.array(w0, np.float64), 0.0, 0.0, []
  for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
    g = np.asarray(g, np.float64)
    g = g * min(1.0, clip_norm / max(np.linalg.norm(g), 1e-30))
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g * g
    if bias_correction:
      update = (m / (1 - beta_1 ** t)) / (np.sqrt(v / (1 - beta_2 ** t)) + epsilon)
    else:
      update = m / (np.sqrt(v) + epsilon)
    w = w - lr * (update + weight_decay_rate * w)
    trajectory.append(w.copy())
  return trajectory


def _tf_adamw(w0, grads, bias_correction, init_lr=1e-3, num_train_steps=100):
  """Runs create_optimizer on the loss sum(w * g_t); returns (weights after each step, lrs)."""
  with tf.Graph().as_default():
    g = tf1.placeholder(tf.float32, [len(w0)])
    w = tf1.get_variable("dense/kernel", [len(w0)], initializer=tf1.constant_initializer(w0))
    train_op, lr, _ = optimization.create_optimizer(
        tf.reduce_sum(w * g), init_lr, num_train_steps=num_train_steps, num_warmup_steps=0,
        bias_correction=bias_correction)
    weights, lrs = [], []
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for grad in grads:
        _, lr_value = session.run([train_op, lr], {g: grad})
        weights.append(session.run(w))
        lrs.append(lr_value)
  return weights, lrs


GRADS = [[0.3, -0.4, 0.05], [0.2, -0.1, 0.0], [-0.5, 0.3, 0.1], [2.0, 1.0, -2.0],
         [0.01, 0.02, -0.03]]


def test_bias_corrected_first_steps_match_numpy_adam():
  w0 = [1.0, -2.0, 0.5]
  weights, lrs = _tf_adamw(w0, GRADS, bias_correction=True)
  expected = _numpy_adamw(w0, GRADS, lrs, bias_correction=True)
  for step, (got, want) in enumerate(zip(weights, expected), start=1):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg="step %d" % step)
  # The first update of textbook Adam is about lr per coordinate (m̂/√v̂ = sign(g)), not the
  # ~3× larger step of the uncorrected optimizer.
  first_step = np.abs(np.array(weights[0]) - np.array(w0) * (1 - lrs[0] * 0.01))
  np.testing.assert_allclose(first_step[:2], lrs[0], rtol=1e-3)


def test_uncorrected_mode_reproduces_googles_tf1_updates():
  w0 = [1.0, -2.0, 0.5]
  corrected, _ = _tf_adamw(w0, GRADS, bias_correction=True)
  weights, lrs = _tf_adamw(w0, GRADS, bias_correction=False)
  expected = _numpy_adamw(w0, GRADS, lrs, bias_correction=False)
  for step, (got, want) in enumerate(zip(weights, expected), start=1):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg="step %d" % step)
  # Google's first step: m/(√v+ε) = 0.1·g/(√0.001·|g|) ≈ 3.16 per coordinate, not 1.
  first_step = np.abs(np.array(weights[0]) - np.array(w0) * (1 - lrs[0] * 0.01))
  np.testing.assert_allclose(first_step[:2], lrs[0] * 0.1 / np.sqrt(0.001), rtol=1e-3)
  assert not np.allclose(corrected[0], weights[0])


def test_checkpoints_resume_across_bias_correction_modes(tmp_path):
  """The correction adds no variable: a checkpoint saved in one mode restores in the other."""
  names = {}
  for mode in (True, False):
    with tf.Graph().as_default():
      w = tf1.get_variable("dense/kernel", [3], initializer=tf1.constant_initializer(1.0))
      optimization.create_optimizer(tf.reduce_sum(w * w), 1e-3, 10, 0, bias_correction=mode)
      names[mode] = sorted(v.op.name for v in tf1.global_variables())
      saver = tf1.train.Saver()
      with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        if mode:
          saver.save(session, str(tmp_path / "model.ckpt"))
        else:
          saver.restore(session, str(tmp_path / "model.ckpt"))
  assert names[True] == names[False]


def test_dynamic_loss_scale_recovers_from_overflow():
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, [2])
    w = tf1.get_variable("w", [2], initializer=tf1.constant_initializer(1.0))
    loss = tf.reduce_sum(w * x)  # the gradient of w is x
    loss_scale = optimization.DynamicLossScale(initial=1024.0, period=2)
    train_op, _, finite = optimization.create_optimizer(
        loss, 0.1, num_train_steps=100, num_warmup_steps=0, weight_decay_rate=0.0,
        loss_scale=loss_scale, tvars=[w])
    global_step = tf1.train.get_global_step()
    m = [v for v in tf1.global_variables() if v.op.name == "w/adam_m"][0]
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())

      # Overflow: an infinite gradient changes no weight and no slot, and halves the scale.
      _, ok = session.run([train_op, finite], {x: [np.inf, 1.0]})
      assert not ok
      np.testing.assert_array_equal(session.run(w), [1.0, 1.0])
      np.testing.assert_array_equal(session.run(m), [0.0, 0.0])
      assert session.run(loss_scale.scale) == 512.0
      assert session.run(global_step) == 1

      # NaN too.
      _, ok = session.run([train_op, finite], {x: [np.nan, 1.0]})
      assert not ok
      np.testing.assert_array_equal(session.run(w), [1.0, 1.0])
      assert session.run(loss_scale.scale) == 256.0

      # The next finite step updates the weights with the unscaled gradient.
      _, ok = session.run([train_op, finite], {x: [0.5, -0.5]})
      assert ok
      after = session.run(w)
      assert np.all(np.isfinite(after))
      assert after[0] < 1.0 < after[1]
      np.testing.assert_allclose(session.run(m), [0.05, -0.05], rtol=1e-5)
      assert session.run(loss_scale.scale) == 256.0

      # `period` finite steps in a row double the scale again.
      session.run(train_op, {x: [0.5, -0.5]})
      assert session.run(loss_scale.scale) == 512.0
      assert session.run(global_step) == 4
