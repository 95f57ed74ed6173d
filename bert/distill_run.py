"""DistillRun: ClassifierRun with a frozen teacher and Hinton's loss.

The teacher SavedModel (an export of run_classifier.py) runs frozen inside the student's graph
on the same batch (teacher_logits online), or once over the training set with its logits stored
in the features (cached). The student is evaluated and exported at T=1.
"""

import os

from bert import classifier_run, distill_config, distill_features, distill_loss, distill_matches
from bert import distillation
from bert.training import log


def load_teachers(config):
  """The teachers of config.distill.teacher_model, each checked against the student's task.

  Several: an ensemble, whose logits are all cached (teacher_logits cached); the first is the
  one whose accuracy is checked before training.
  """
  teachers = [distillation.Teacher(path, weight) for path, weight in config.distill.teachers]
  for teacher in teachers:
    teacher.check_compatible(list(config.label_list), config.vocab_file, config.do_lower_case,
                             config.max_seq_length)
  for teacher in teachers:
    if teacher.training_temperature != 1.0:
      log("Teacher %s was trained at temperature %g (--do_distill): its export serves logits "
          "/ %g; distillation takes its raw logits and applies --temperature only" %
          (teacher.version_dir, teacher.training_temperature, teacher.training_temperature))
  return teachers


def matches_config(config, teachers):
  """The run's DistillConfig (matches, schedules, stage, matched teacher), checked against the
  teacher and student models; an older teacher export without the matched tensors fails here."""
  d = config.distill
  matches = distill_config.DistillConfig(
      [t.info["bert_config"] for t in teachers], config.bert_config.to_dict(),
      [path for path, _ in d.teachers], d.alpha, config.temperature, d.distill_config,
      d.distill_preset, d.distill_layer_map, d.distill_stage, d.match_teacher, d.soft_loss)
  for match in matches.matches:
    teachers[matches.teacher].intermediate_name(distill_matches.teacher_key(match))
  return matches


class DistillRun(classifier_run.ClassifierRun):
  """ClassifierRun whose loss is Hinton's, against a frozen teacher (config.distill)."""

  checks_constant_loss = False  # the loss mixes the teacher's soft targets in; eval still checks

  def __init__(self, config):
    super(DistillRun, self).__init__(config)
    self.teachers = load_teachers(config)
    self.teacher = self.teachers[0]
    self.distill_config = matches_config(config, self.teachers)

  def teacher_features(self, split):
    """The split's features plus the teacher's logits, cached while inputs and teacher are same."""
    record_file, info = self.features(split)
    return distill_features.with_teacher_logits(self.teachers, record_file, info, split)

  def train_features(self):
    """The training records: labelled, plus the transfer set, plus cached teacher logits.

    The teacher's accuracy is checked first: on the dev split, or on the training split when
    there is no dev file (--do_train alone does not need one).
    """
    c = self.config
    split = "dev" if os.path.isfile(self.processor.data_file(c.data_dir, "dev")) else "train"
    check_file, check_info = self.teacher_features(split)
    for teacher, accuracy in zip(self.teachers, check_info["teacher_accuracies"]):
      distillation.warn_if_weak(accuracy, teacher.version_dir, split)
    if len(self.teachers) > 1:
      labels, logits = distillation.records_teacher_logits(check_file, len(self.teachers))
      average = distill_loss.teacher_average_of(self.distill_config, c.distill.teacher_average)
      distillation.report_ensemble(
          distillation.ensemble_accuracy(labels, logits, [t.weight for t in self.teachers],
                                         average),
          check_info["teacher_accuracies"], split)
    record_file, info = self.features("train")
    transfer = distill_features.transfer_features(c, self.processor, self.tokenizer, record_file,
                                                  info)
    if transfer:
      record_file, info = transfer
      log("Training set: %d labelled + %d transfer examples = %d per epoch (transfer examples "
          "get the soft loss only)" % (info["num_labelled"], info["num_transfer"],
                                       info["num_examples"]))
    if c.distill.teacher_logits == "cached":
      record_file, teacher_info = distill_features.with_teacher_logits(
          self.teachers, record_file, info, "train+transfer" if transfer else "train")
      counts = {k: info[k] for k in ("num_labelled", "num_transfer") if k in info}
      info = dict(teacher_info, **counts)
      if transfer:  # it counted the transfer examples' placeholder label 0
        info.pop("teacher_accuracy", None)
    return record_file, info

  def eval_features(self):
    return self.teacher_features("dev")

  def loss_description(self):
    return self.distill_config.describe()

  def loss_builder(self):
    return distill_loss.loss_builder(self.teachers, self.distill_config,
                                     self.config.train_steps or 1,
                                     self.config.distill.teacher_average)
