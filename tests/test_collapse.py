"""The collapse guard: a warning for a constant-prediction run, silence for a healthy one."""

import math

import numpy as np

from bert import collapse


def test_constant_loss_warns_at_ln_num_labels_and_names_the_cause():
  rng = np.random.default_rng(0)
  losses = list(np.linspace(0.9, 0.7, 30)) + list(math.log(2) + rng.normal(0, 0.003, 120))
  warning = collapse.constant_loss_warning(losses, 2, learning_rate=1e-3)
  assert warning.startswith("WARNING: the training loss stayed at 0.69")
  assert "--learning_rate 0.001" in warning and "from scratch" in warning
  assert "\n" not in warning
  assert "ln(3)" in collapse.constant_loss_warning([math.log(3)] * 40, 3)


def test_constant_loss_level_scales_with_the_teachers_temperature():
  level = 4.0 * math.log(2)
  assert collapse.constant_loss_warning([level] * 40, 2, temperature=2.0) is not None
  assert collapse.constant_loss_warning([math.log(2)] * 40, 2, temperature=2.0) is None


def test_healthy_or_short_runs_stay_silent():
  learning = list(np.linspace(0.69, 0.25, 200))
  assert collapse.constant_loss_warning(learning, 2) is None
  assert collapse.constant_loss_warning([math.log(2)] * 10, 2) is None  # too short to tell
  assert collapse.constant_loss_warning([0.0] * 50, 1) is None


def test_single_class_prediction_warns_healthy_eval_does_not():
  warning = collapse.single_class_warning(np.ones(50, dtype=int), ["neg", "pos"])
  assert "predicts label 'pos' for all 50 dev examples" in warning and "one class" in warning
  assert collapse.single_class_warning(np.array([0, 1, 1, 1]), ["neg", "pos"]) is None
  assert collapse.single_class_warning(np.array([0]), ["neg", "pos"]) is None
