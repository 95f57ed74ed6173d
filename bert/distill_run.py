"""DistillRun: ClassifierRun with a frozen teacher and Hinton's loss.

The teacher SavedModel (an export of run_classifier.py) runs frozen inside the student's graph
on the same batch (--teacher_logits=online), or once over the training set with its logits
stored in the features (--teacher_logits=cached). The student is evaluated and exported at T=1.
"""

import os

import tensorflow as tf

from bert import classifier, classifier_data, classifier_flags, classifier_run, distillation
from bert.training import ModeKeys, log

TEACHER_RECORD_SUFFIX = ".teacher.tf_record"


class DistillRun(classifier_run.ClassifierRun):
  """ClassifierRun whose loss is Hinton's, against a frozen teacher."""

  def __init__(self, flag_values):
    super(DistillRun, self).__init__(flag_values)
    fv = flag_values
    self.teacher = distillation.Teacher(fv.teacher_model)
    self.teacher.check_compatible(self.label_list, fv.vocab_file, fv.do_lower_case,
                                  fv.max_seq_length)

  def validate_flags(self):
    classifier_flags.check_distill_flags(self.flags)

  @property
  def train_temperature(self):
    return 1.0  # the student's hard-label loss, eval and export are at T=1

  def teacher_features(self, split):
    """The split's features plus the teacher's logits, cached while inputs and teacher are unchanged."""
    record_file, base_info = self.features(split)
    fingerprint = dict(base_info["fingerprint"], extra=self.teacher.fingerprint())
    output = record_file[:-len(".tf_record")] + TEACHER_RECORD_SUFFIX
    info = classifier_data.cached_record_info(output, fingerprint)
    if info:
      log("Reusing teacher logits %s" % output)
    else:
      info = self.teacher.write_logits(record_file, output, fingerprint)
      log("Wrote teacher logits for %d %s examples to %s" % (info["num_examples"], split, output))
    return output, info

  def train_features(self):
    # The teacher's accuracy is checked before any training step: on the dev split, or on the
    # training split when there is no dev file (--do_train alone does not need one).
    fv = self.flags
    split = "dev" if os.path.isfile(self.processor.data_file(fv.data_dir, "dev")) else "train"
    _, check_info = self.teacher_features(split)
    distillation.warn_if_weak(check_info["teacher_accuracy"], self.teacher.version_dir, split)
    if fv.teacher_logits == "cached":
      return self.teacher_features("train")
    return self.features("train")

  def input_fn(self, record_file, is_training):
    fv = self.flags
    return classifier_data.input_fn_builder(
        record_file, is_training, fv.max_seq_length, padding=fv.padding,
        num_labels=len(self.label_list), seed=fv.seed,
        with_teacher_logits=record_file.endswith(TEACHER_RECORD_SUFFIX))

  def eval_features(self):
    return self.teacher_features("dev")

  def loss_builder(self):
    fv = self.flags
    teacher = self.teacher

    def build(features, logits, label_ids, num_labels, mode):
      if "teacher_logits" in features:
        teacher_logits = features["teacher_logits"]
      else:
        teacher_logits = teacher.logits(features["input_ids"], features["input_mask"],
                                        features["segment_ids"])
      loss, hard, soft = distillation.kd_loss(logits, teacher_logits, label_ids,
                                              fv.temperature, fv.alpha)
      if mode == ModeKeys.EVAL:
        # Eval loss is the student's own cross-entropy at T=1; agreement and KL need the teacher.
        eval_tensors = {"teacher_logits": teacher_logits, "student_logits": logits}

        def metrics_fn(arrays):
          agreement, kl = distillation.agreement_and_kl(arrays["teacher_logits"],
                                                        arrays["student_logits"])
          return {"teacher_agreement": agreement, "kl_teacher_student": kl}

        return classifier.LossParts(hard, {}, eval_tensors, metrics_fn)
      return classifier.LossParts(loss, {"hard_loss": tf.reduce_mean(hard),
                                          "soft_loss": tf.reduce_mean(soft)},
                                  {}, None)

    return build
