"""The student's loss builder: Hinton's loss against the teacher(s) plus the intermediate matches.

A loss builder (classifier.model_fn_builder's loss_builder) maps (features, logits, label_ids,
num_labels, mode) to classifier.LossParts.
"""

import tensorflow as tf

from bert import classifier, distill_matches, distillation, modeling
from bert.training import ModeKeys


def teacher_logits_for(features, teachers, config, temperature, training, teacher_average):
  """The teacher side: cached logits from the features, or the teachers run in the graph.

  Cached logits of several teachers (features["teacher_logits"] [batch_size, num_teachers *
  num_labels]) are averaged as the online ones are.
  Returns (logits float32 [batch_size, num_labels], {match key: intermediate tensor} of the
  matched teacher (config.teacher), for the matches of a training step).
  """
  inner = {}
  if "teacher_logits" in features:
    if len(teachers) == 1:
      return features["teacher_logits"], inner
    all_logits = tf.split(features["teacher_logits"], len(teachers), axis=-1)
  else:
    keys = sorted({distill_matches.teacher_key(match) for match in config.matches}) \
        if training else []
    all_logits = []
    for index, teacher in enumerate(teachers):
      logits, found = teacher.outputs(features["input_ids"], features["input_mask"],
                                      features["segment_ids"], keys if index == config.teacher
                                      else ())
      all_logits.append(logits)
      inner.update(found)
  return distill_matches.ensemble_logits(all_logits, [t.weight for t in teachers],
                                         temperature if training else 1.0, teacher_average), inner


def eval_parts(hard, teacher_logits, logits):
  """Eval: the student's own cross-entropy at T=1; agreement and KL with the teacher at T=1."""

  def metrics_fn(arrays):
    agreement, kl = distillation.agreement_and_kl(arrays["teacher_logits"],
                                                  arrays["student_logits"])
    return {"teacher_agreement": agreement, "kl_teacher_student": kl}

  return classifier.LossParts(hard, {}, {"teacher_logits": teacher_logits,
                                         "student_logits": logits}, metrics_fn)


def teacher_average_of(config, teacher_average):
  """How several teachers are averaged: --teacher_average, but always logits for soft_loss
  "mse", which compares logits."""
  return "logits" if config.soft_loss == "mse" else teacher_average


def loss_builder(teachers, config, total_steps, teacher_average="probs"):
  """Hinton's loss against the teacher (or the teachers' average) plus the intermediate matches.

  Args:
    teachers: distillation.Teacher list (an ensemble when several).
    config: the distill_config.DistillConfig (matches, alpha/temperature schedules, stage).
    total_steps: the run's training steps, over which the schedules run.
    teacher_average: "probs" or "logits", how several teachers are averaged (always logits
      with config.soft_loss "mse", which compares logits).
  Temperature, alpha and match weights follow their schedules over the run's steps; with stage
  intermediate the per-example loss is the matches alone.
  """

  def build(features, logits, label_ids, num_labels, mode):
    del num_labels
    training = mode == ModeKeys.TRAIN
    step = tf.compat.v1.train.get_or_create_global_step()
    temperature = distill_matches.schedule_tensor(config.temperature, step, total_steps)
    alpha = distill_matches.schedule_tensor(config.alpha, step, total_steps)
    average = teacher_average_of(config, teacher_average)
    teacher_logits, inner = teacher_logits_for(features, teachers, config, temperature, training,
                                               average)
    loss, hard, soft = distillation.kd_loss(logits, teacher_logits, label_ids, temperature, alpha,
                                            has_label=features.get("has_label"),
                                            soft_loss=config.soft_loss)
    if mode == ModeKeys.EVAL:
      return eval_parts(hard, teacher_logits, logits)
    summaries = {"hard_loss": classifier.batch_mean(hard),
                 "soft_loss": classifier.batch_mean(soft)}
    for name, spec, value in (("alpha", config.alpha, alpha),
                              ("temperature", config.temperature, temperature)):
      if spec["schedule"] != "constant":
        summaries[name] = value
    if config.matches and training:
      student = modeling.BertModel.built_in()[-1]
      match_loss, match_summaries = distill_matches.build_losses(
          config.matches, student, inner, features["input_mask"], step, total_steps)
      summaries.update(match_summaries)
      loss = match_loss if config.stage == "intermediate" else loss + match_loss
    return classifier.LossParts(loss, summaries, {}, None)

  return build
