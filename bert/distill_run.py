"""DistillRun: ClassifierRun with a frozen teacher and Hinton's loss.

The teacher SavedModel (an export of run_classifier.py) runs frozen inside the student's graph
on the same batch (--teacher_logits=online), or once over the training set with its logits
stored in the features (--teacher_logits=cached). The student is evaluated and exported at T=1.
"""

import os

import tensorflow as tf

from bert import (augment, classifier, classifier_data, classifier_flags, classifier_run,
                  distillation)
from bert.errors import UsageError
from bert import distill_config, distill_matches, modeling
from bert.training import ModeKeys, log

TEACHER_RECORD_SUFFIX = ".teacher.tf_record"
# Labelled and transfer-set training examples, with has_label (and `.teacher` when cached).
TRANSFER_RECORD_PREFIX = "train_transfer."
TRANSFER_RECORD = TRANSFER_RECORD_PREFIX + "tf_record"


class DistillRun(classifier_run.ClassifierRun):
  """ClassifierRun whose loss is Hinton's, against a frozen teacher."""

  checks_constant_loss = False  # the loss mixes the teacher's soft targets in; eval still checks

  def __init__(self, flag_values):
    super(DistillRun, self).__init__(flag_values)
    fv = flag_values
    # Several --teacher_model: an ensemble, each checked; the first is the one whose logits are
    # cached and whose accuracy is checked, --match_teacher the one intermediate matches use.
    self.teachers = distillation.Teacher.from_flag(fv.teacher_model)
    for teacher in self.teachers:
      teacher.check_compatible(self.label_list, fv.vocab_file, fv.do_lower_case,
                               fv.max_seq_length)
    for teacher in self.teachers:
      if teacher.training_temperature != 1.0:
        log("Teacher %s was trained at temperature %g (--do_distill): its export serves logits "
            "/ %g; distillation takes its raw logits and applies --temperature only" %
            (teacher.version_dir, teacher.training_temperature, teacher.training_temperature))
    self.teacher = self.teachers[0]
    self.distill_config = distill_config.DistillConfig(
        fv, [t.info["bert_config"] for t in self.teachers], self.bert_config.to_dict())
    matched = self.teachers[self.distill_config.teacher]
    for match in self.distill_config.matches:  # older exports: a one-line error now
      matched.intermediate_name(distill_matches.teacher_key(match))

  def validate_flags(self):
    classifier_flags.check_distill_flags(self.flags)

  @property
  def train_temperature(self):
    return 1.0  # the student's hard-label loss, eval and export are at T=1

  def teacher_features(self, split):
    """The split's features plus the teacher's logits, cached while inputs and teacher are same."""
    record_file, base_info = self.features(split)
    return self.with_teacher_logits(record_file, base_info, split)

  def with_teacher_logits(self, record_file, base_info, split):
    """record_file's records plus the teacher's logits, in `<name>.teacher.tf_record`."""
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
    record_file, info = self.features("train")
    transfer = self.transfer_features(record_file, info)
    if transfer:
      record_file, info = transfer
      log("Training set: %d labelled + %d transfer examples = %d per epoch (transfer examples "
          "get the soft loss only)" % (info["num_labelled"], info["num_transfer"],
                                       info["num_examples"]))
    if fv.teacher_logits == "cached":
      record_file, teacher_info = self.with_teacher_logits(
          record_file, info, "train+transfer" if transfer else "train")
      counts = {k: info[k] for k in ("num_labelled", "num_transfer") if k in info}
      info = dict(teacher_info, **counts)
      if transfer:  # it counted the transfer examples' placeholder label 0
        info.pop("teacher_accuracy", None)
    return record_file, info

  # -- transfer set ----------------------------------------------------------------------------

  def augmented_file(self, train_examples):
    """output_dir/augmented.txt: --augment_copies variants of each training text (cached)."""
    fv = self.flags
    settings = augment.Settings(fv.augment_copies, fv.augment_seed, fv.augment_mask_prob,
                                fv.augment_replace_prob, fv.augment_ngram_prob,
                                fv.augment_max_ngram)
    data_file = self.processor.data_file(fv.data_dir, "train")
    fingerprint = augment.fingerprint(data_file, settings,
                                      augment.mask_token_for(self.tokenizer.vocab),
                                      classifier_data.file_fingerprint(data_file))
    fingerprint["processor"] = self.processor.options()
    if fv.augment_mlm_checkpoint:
      index = fv.augment_mlm_checkpoint + ".index"
      fingerprint["mlm"] = {"checkpoint": os.path.abspath(fv.augment_mlm_checkpoint),
                            "index_sha256": classifier_data.file_fingerprint(index)
                            if os.path.isfile(index) else None,
                            "top_k": fv.augment_mlm_top_k}
    path = augment.cached_augmented(fv.output_dir, fingerprint)
    if path:
      log("Reusing augmented transfer examples %s" % path)
      return path
    mlm = None
    if fv.augment_mlm_checkpoint:
      mlm = augment.MlmFiller(fv.augment_mlm_checkpoint, fv.vocab_file, fv.do_lower_case,
                              fv.augment_mlm_top_k, fv.max_seq_length)
    try:
      augment.write_augmented(fv.output_dir, train_examples(), settings,
                              augment.mask_token_for(self.tokenizer.vocab), fingerprint, log=log,
                              mlm=mlm)
    finally:
      if mlm is not None:
        mlm.close()
    return os.path.join(fv.output_dir, augment.AUGMENTED_FILE)

  def transfer_features(self, train_record, train_info):
    """(record, info) of the labelled and transfer examples shuffled together, or None.

    The transfer set is --transfer_file plus --augment_copies variants of the training texts;
    its records have has_label 0 and label_ids 0. Rebuilt when the training features, a transfer
    file, the augmentation settings or --seed change.
    """
    fv = self.flags
    if not fv.transfer_file and not fv.augment_copies:
      return None
    cache = {}

    def train_examples():
      if "train" not in cache:
        cache["train"] = self.processor.get_examples(fv.data_dir, "train")
      return cache["train"]

    sources = []
    if fv.transfer_file:
      if not os.path.isfile(fv.transfer_file):
        raise UsageError("--transfer_file %s: not found" % fv.transfer_file)
      sources.append((fv.transfer_file, fv.transfer_format))
    if fv.augment_copies:
      sources.append((self.augmented_file(train_examples), "text"))
    fingerprint = dict(train_info["fingerprint"], transfer=[
        {"file": os.path.abspath(path), "format": fmt,
         "sha256": classifier_data.file_fingerprint(path)} for path, fmt in sources],
                       shuffle_seed=fv.seed)
    output = os.path.join(fv.output_dir, TRANSFER_RECORD)
    info = classifier_data.cached_record_info(output, fingerprint)
    if info:
      log("Reusing %s (%d labelled + %d transfer examples)" %
          (output, info["num_labelled"], info["num_transfer"]))
      return output, info
    pairs = any(e.text_b for e in train_examples())
    examples = []
    for path, fmt in sources:
      examples.extend(classifier_data.read_transfer_examples(path, fmt, self.processor, pairs))
    features = classifier_data.convert_examples_to_features(
        examples, self.label_list, fv.max_seq_length, augment.MaskAwareTokenizer(self.tokenizer))
    info = classifier_data.write_transfer_records(output, train_record, features, fingerprint,
                                                  fv.seed)
    log("Wrote %s: %d labelled + %d transfer examples (%d transfer examples truncated to "
        "max_seq_length %d)" % (output, info["num_labelled"], info["num_transfer"],
                                info["num_transfer_truncated"], fv.max_seq_length))
    return output, info

  def input_fn(self, record_file, is_training):
    fv = self.flags
    return classifier_data.input_fn_builder(
        record_file, is_training, fv.max_seq_length, padding=fv.padding,
        num_labels=len(self.label_list), seed=fv.seed,
        with_teacher_logits=record_file.endswith(TEACHER_RECORD_SUFFIX),
        with_has_label=os.path.basename(record_file).startswith(TRANSFER_RECORD_PREFIX))

  def eval_features(self):
    return self.teacher_features("dev")

  def loss_builder(self):
    """Hinton's loss against the teacher (or the teachers' average) plus the intermediate matches.

    Temperature, alpha and match weights follow their schedules over the run's steps; with
    --distill_stage=intermediate the per-example loss is the matches alone. Eval: the student's
    own cross-entropy at T=1, and agreement and KL with the teacher(s) at T=1.
    """
    fv = self.flags
    teachers, config = self.teachers, self.distill_config
    total_steps = self.num_train_steps

    def build(features, logits, label_ids, num_labels, mode):
      training = mode == ModeKeys.TRAIN
      step = tf.compat.v1.train.get_or_create_global_step()
      temperature = distill_matches.schedule_tensor(config.temperature, step, total_steps)
      alpha = distill_matches.schedule_tensor(config.alpha, step, total_steps)
      matches = config.matches if training else []
      keys = sorted({distill_matches.teacher_key(match) for match in matches})
      inner = {}
      if "teacher_logits" in features:
        teacher_logits = features["teacher_logits"]
      else:
        all_logits = []
        for index, teacher in enumerate(teachers):
          teacher_logits, found = teacher.outputs(
              features["input_ids"], features["input_mask"], features["segment_ids"],
              keys if index == config.teacher else ())
          all_logits.append(teacher_logits)
          inner.update(found)
        teacher_logits = distill_matches.ensemble_logits(
            all_logits, [t.weight for t in teachers], temperature if training else 1.0,
            fv.teacher_average)
      loss, hard, soft = distillation.kd_loss(logits, teacher_logits, label_ids,
                                              temperature, alpha,
                                              has_label=features.get("has_label"))
      if mode == ModeKeys.EVAL:
        # Eval loss is the student's own cross-entropy at T=1; agreement and KL need the teacher.
        eval_tensors = {"teacher_logits": teacher_logits, "student_logits": logits}

        def metrics_fn(arrays):
          agreement, kl = distillation.agreement_and_kl(arrays["teacher_logits"],
                                                        arrays["student_logits"])
          return {"teacher_agreement": agreement, "kl_teacher_student": kl}

        return classifier.LossParts(hard, {}, eval_tensors, metrics_fn)
      summaries = {"hard_loss": tf.reduce_mean(hard), "soft_loss": tf.reduce_mean(soft)}
      for name, spec, value in (("alpha", config.alpha, alpha),
                                ("temperature", config.temperature, temperature)):
        if spec["schedule"] != "constant":
          summaries[name] = value
      for line in config.describe():
        log(line)
      if matches:
        student = modeling.BertModel.built_in()[-1]
        match_loss, match_summaries = distill_matches.build_losses(
            matches, student, inner, features["input_mask"], step, total_steps)
        summaries.update(match_summaries)
        loss = match_loss if config.stage == "intermediate" else loss + match_loss
      return classifier.LossParts(loss, summaries, {}, None)

    return build
