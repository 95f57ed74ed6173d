"""A student's training records: the transfer set, and the teacher's logits cached in records.

Each is a TFRecord in output_dir with a sidecar info (classifier_data.write_records), rebuilt only
when what decides it changed. The sidecar says which optional fields the records hold
(has_teacher_logits, has_label); input_fn reads them from there.
"""

import os

from bert import augment, classifier_data, distillation
from bert.errors import UsageError
from bert.training import log

TEACHER_RECORD_SUFFIX = ".teacher.tf_record"  # <records>.teacher.tf_record: + teacher_logits
TRANSFER_RECORD = "train_transfer.tf_record"  # labelled + transfer-set examples, with has_label


def with_teacher_logits(teachers, record_file, base_info, what):
  """(path, info) of record_file's records plus the teachers' logits [num_teachers * num_labels]
  (one teacher: [num_labels]), in `<name>.teacher.tf_record`; info adds num_teachers,
  teacher_accuracy (the first teacher's) and teacher_accuracies. what: the records, for the log."""
  extra = [t.fingerprint() for t in teachers]
  fingerprint = dict(base_info["fingerprint"], extra=extra[0] if len(extra) == 1 else extra)
  output = record_file[:-len(".tf_record")] + TEACHER_RECORD_SUFFIX
  info = classifier_data.cached_record_info(output, fingerprint)
  if info:
    log("Reusing teacher logits %s" % output)
  else:
    info = distillation.write_teachers_logits(teachers, record_file, output, fingerprint,
                                              has_label=base_info["has_label"])
    log("Wrote teacher logits%s for %d %s examples to %s" % (
        " (%d teachers)" % len(teachers) if len(teachers) > 1 else "", info["num_examples"], what,
        output))
  return output, info


def augmented_file(config, processor, vocab, train_examples):
  """output_dir/augmented.txt: augment_copies variants of each training text (cached).

  train_examples: a function returning the training InputExamples (read only when needed).
  """
  distill = config.distill
  augment_settings = augment.Settings(
      distill.augment_copies, distill.augment_seed, distill.augment_mask_prob,
      distill.augment_replace_prob, distill.augment_ngram_prob, distill.augment_max_ngram,
      distill.augment_min_length)
  data_file = processor.data_file(config.data_dir, "train")
  mask_token = augment.mask_token_for(vocab)
  fingerprint = augment.fingerprint(data_file, augment_settings, mask_token,
                                    classifier_data.file_fingerprint(data_file))
  fingerprint["processor"] = processor.options()
  checkpoint = distill.augment_mlm_checkpoint
  if checkpoint:
    index = checkpoint + ".index"
    fingerprint["mlm"] = {"checkpoint": os.path.abspath(checkpoint),
                          "index_sha256": classifier_data.file_fingerprint(index)
                          if os.path.isfile(index) else None,
                          "top_k": distill.augment_mlm_top_k}
  path = augment.cached_augmented(config.output_dir, fingerprint)
  if path:
    log("Reusing augmented transfer examples %s" % path)
    return path
  mlm = None
  if checkpoint:
    mlm = augment.MlmFiller(checkpoint, config.vocab_file, config.do_lower_case,
                            distill.augment_mlm_top_k, config.max_seq_length)
  try:
    augment.write_augmented(config.output_dir, train_examples(), augment_settings, mask_token,
                            fingerprint, log=log, mlm=mlm)
  finally:
    if mlm is not None:
      mlm.close()
  return os.path.join(config.output_dir, augment.AUGMENTED_FILE)


def transfer_features(config, processor, tokenizer, train_record, train_info):
  """(record, info) of the labelled and transfer examples shuffled together, or None.

  The transfer set is transfer_file plus augment_copies variants of the training texts; its
  records have has_label 0 and label_ids 0 (the labelled ones has_label 1). info adds
  num_labelled, num_transfer, num_transfer_truncated. Rebuilt when the training features, a
  transfer file, the augmentation settings or the seed change.
  """
  distill = config.distill
  if not distill.transfer_file and not distill.augment_copies:
    return None
  cache = {}

  def train_examples():
    if "train" not in cache:
      cache["train"] = processor.get_examples(config.data_dir, "train")
    return cache["train"]

  sources = []
  if distill.transfer_file:
    if not os.path.isfile(distill.transfer_file):
      raise UsageError("--transfer_file %s: not found" % distill.transfer_file)
    sources.append((distill.transfer_file, distill.transfer_format))
  if distill.augment_copies:
    sources.append((augmented_file(config, processor, tokenizer.vocab, train_examples), "text"))
  fingerprint = dict(train_info["fingerprint"], transfer=[
      {"file": os.path.abspath(path), "format": fmt,
       "sha256": classifier_data.file_fingerprint(path)} for path, fmt in sources],
                     shuffle_seed=config.seed)
  output = os.path.join(config.output_dir, TRANSFER_RECORD)
  info = classifier_data.cached_record_info(output, fingerprint)
  if info:
    log("Reusing %s (%d labelled + %d transfer examples)" %
        (output, info["num_labelled"], info["num_transfer"]))
    return output, info
  pairs = any(e.text_b for e in train_examples())
  examples = []
  for path, fmt in sources:
    examples.extend(classifier_data.read_transfer_examples(path, fmt, processor, pairs))
  features = classifier_data.convert_examples_to_features(
      examples, list(config.label_list), config.max_seq_length,
      augment.MaskAwareTokenizer(tokenizer))
  info = classifier_data.write_transfer_records(output, train_record, features, fingerprint,
                                                config.seed)
  log("Wrote %s: %d labelled + %d transfer examples (%d transfer examples truncated to "
      "max_seq_length %d)" % (output, info["num_labelled"], info["num_transfer"],
                              info["num_transfer_truncated"], config.max_seq_length))
  return output, info
