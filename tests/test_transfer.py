"""Transfer set and augmentation: soft loss only for unlabelled examples, deterministic
augmentation that keeps labels out, cached teacher logits over the transfer set, and a tiny
distillation run with --augment_copies=2.

Everything runs in-process on a 1-layer, 32-wide teacher and student.
"""

import dataclasses
import json
import os
import random
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

import conftest
from bert import augment, classifier_data, classifier_flags, classifier_run
from bert.distill_features import TEACHER_RECORD_SUFFIX, TRANSFER_RECORD
from bert.distill_run import DistillRun
from bert.errors import UsageError
from bert.run_config import DistillSettings
from bert import distillation

tf1 = tf.compat.v1

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ["good", "great", "fine"]
NEGATIVE = ["bad", "awful", "slow"]
FILLER = ["the", "food", "was", "and", "service", "today", "we", "ate", "a", "meal", "here"]
VOCAB = SPECIALS + POSITIVE + NEGATIVE + FILLER + ["好", "差", "饭"]
LABELS = ["0", "1"]
MAX_SEQ_LENGTH = 24


def tiny_config(num_layers=1, hidden=32):
  return {"vocab_size": len(VOCAB), "hidden_size": hidden, "num_hidden_layers": num_layers,
          "num_attention_heads": 2, "intermediate_size": 2 * hidden, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
          "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02}


def write(path, text):
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path


def review_lines(count, seed):
  """`text&label`, label 1 iff the text holds a positive word."""
  rng = random.Random(seed)
  lines = []
  for index in range(count):
    label = index % 2
    body = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
    body.insert(rng.randrange(len(body) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    lines.append("%s&%d" % (" ".join(body), label))
  return lines


make_config = conftest.run_config
captured = conftest.captured


class Kit(object):
  """An emotion-format dataset, its vocab, and a trained 1-layer teacher export."""

  def __init__(self, root):
    self.root = root
    self.data_dir = os.path.join(root, "data")
    os.makedirs(self.data_dir)
    for offset, (split, count) in enumerate((("train", 96), ("dev", 32))):
      write(os.path.join(self.data_dir, split + ".csv"),
            "\n".join(review_lines(count, offset)) + "\n")
    self.vocab_file = write(os.path.join(root, "vocab.txt"), "\n".join(VOCAB) + "\n")
    self.config = os.path.join(root, "config.json")
    write(self.config, json.dumps(tiny_config()))
    self.teacher_export = os.path.join(root, "teacher_export")
    config = self.run_config("teacher", False, do_train=True, num_train_steps=60,
                             do_export=True, export_dir=self.teacher_export, temperature=1.0)
    with captured():
      classifier_run.ClassifierRun(config).run()

  def run_config(self, output_dir, distill=True, **overrides):
    values = dict(task_name="emotion", data_dir=self.data_dir, vocab_file=self.vocab_file,
                  output_dir=os.path.join(self.root, output_dir), max_seq_length=MAX_SEQ_LENGTH,
                  train_batch_size=16, eval_batch_size=32, learning_rate=3e-3,
                  warmup_proportion=0.0, bert_config_file=self.config,
                  teacher_model=self.teacher_export)
    values.update(overrides)
    return make_config(distill, **values)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
  return Kit(str(tmp_path_factory.mktemp("transfer")))


def records(record_file):
  return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(record_file)]


def sidecar(record_file):
  """The info JSON written beside a record file (classifier_data.write_records)."""
  with open(record_file + ".json", encoding="utf-8") as f:
    return json.load(f)


def ints(example, name):
  return list(example.features.feature[name].int64_list.value)


# -- the loss --------------------------------------------------------------------------------

def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_transfer_examples_get_the_soft_loss_only():
  rng = np.random.RandomState(0)
  batch, num_labels, t, a = 8, 3, 2.0, 0.3
  student = (rng.randn(batch, num_labels) * 3).astype(np.float32)
  teacher = (rng.randn(batch, num_labels) * 3).astype(np.float32)
  labels = rng.randint(0, num_labels, batch).astype(np.int32)
  has_label = np.array([1, 0, 1, 0, 0, 1, 1, 0], np.int32)
  with tf.Graph().as_default():
    s_in = tf1.placeholder(tf.float32, [None, num_labels])
    loss, hard, soft = distillation.kd_loss(s_in, tf.constant(teacher), tf.constant(labels), t, a,
                                            has_label=tf.constant(has_label))
    plain, _, _ = distillation.kd_loss(s_in, tf.constant(teacher), tf.constant(labels), t, a)
    (grad,) = tf.gradients(tf.reduce_sum(loss), [s_in])
    with tf1.Session() as session:
      loss, hard, soft, plain, grad = session.run([loss, hard, soft, plain, grad], {s_in: student})
  hard_ref = -_log_softmax(student)[np.arange(batch), labels]
  soft_ref = -np.sum(np.exp(_log_softmax(teacher / t)) * _log_softmax(student / t), -1) * t * t
  expected = np.where(has_label == 1, (1 - a) * hard_ref + a * soft_ref, soft_ref)
  np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(hard, hard_ref * has_label, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(soft, soft_ref, rtol=1e-5, atol=1e-5)
  labelled = has_label == 1
  np.testing.assert_allclose(loss[labelled], plain[labelled], rtol=1e-6, atol=1e-6)
  # d loss / d student of a transfer example: the soft term's T·(softmax(s/T) - softmax(t/T))
  # alone; the label (whatever it says) pulls on nothing.
  soft_grad = t * (np.exp(_log_softmax(student / t)) - np.exp(_log_softmax(teacher / t)))
  hard_grad = np.exp(_log_softmax(student)) - np.eye(num_labels)[labels]
  np.testing.assert_allclose(grad[~labelled], soft_grad[~labelled], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(grad[labelled], ((1 - a) * hard_grad + a * soft_grad)[labelled],
                             rtol=1e-4, atol=1e-5)


def test_training_accuracy_counts_labelled_examples_only():
  from bert import classifier, modeling
  from bert.training import ModeKeys
  config = modeling.BertConfig.from_dict(tiny_config())
  captured_logits = {}

  def loss_builder(features, logits, label_ids, num_labels, mode):
    captured_logits["logits"] = logits
    return classifier.LossParts(classifier.tempered_cross_entropy(label_ids, logits, num_labels),
                                {}, {}, None)

  rng = np.random.RandomState(1)
  batch = {"input_ids": rng.randint(5, len(VOCAB), [16, 6]).astype(np.int32),
           "input_mask": np.ones([16, 6], np.int32), "segment_ids": np.zeros([16, 6], np.int32),
           "label_ids": rng.randint(0, 2, 16).astype(np.int32),
           "has_label": np.array([1, 0] * 8, np.int32)}
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    features = {name: tf.constant(value) for name, value in batch.items()}
    tf1.train.get_or_create_global_step()
    spec = classifier.model_fn_builder(config, LABELS, loss_builder=loss_builder)(
        features, None, ModeKeys.TRAIN, {})
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      accuracies, expected, over_all = [], [], []
      for _ in range(5):
        logits, accuracy = session.run([captured_logits["logits"], spec.summaries["accuracy"]])
        correct = np.argmax(logits, -1) == batch["label_ids"]
        accuracies.append(accuracy)
        expected.append(correct[batch["has_label"] == 1].mean())
        over_all.append(correct.mean())
  np.testing.assert_allclose(accuracies, expected, atol=1e-6)
  assert not np.allclose(expected, over_all)  # the check tells the two apart


# -- augmentation ----------------------------------------------------------------------------

CORPUS = ["the food was good and the service was great today",
          "we ate a slow meal here and it was awful",
          "a fine meal", "bad", "这家 外卖 很好吃 ok"]


def test_augmentation_is_deterministic_by_seed():
  augmenter = augment.Augmenter(CORPUS)
  first = [augmenter.variants(i, text, None, 3, seed=5) for i, text in enumerate(CORPUS)]
  again = [augment.Augmenter(list(reversed(CORPUS))).variants(i, text, None, 3, seed=5)
           for i, text in enumerate(CORPUS)]
  other = [augmenter.variants(i, text, None, 3, seed=6) for i, text in enumerate(CORPUS)]
  assert first == again  # nor does the corpus order change the replacement pool
  assert first != other
  assert all(len(v) == 3 for v in first)
  # A copy differs from its source whenever the rules can reach another text.
  assert all(variant[0] != CORPUS[0] for variant in first[0])


def test_augmentation_rates_match_the_settings():
  rng = random.Random(0)
  corpus = [" ".join(rng.choice(FILLER) for _ in range(20)) for _ in range(200)]
  words = sum(len(text.split()) for text in corpus)

  def rate(augmenter, changed):
    draw = random.Random(1)
    outputs = [augmenter.augment(text, draw) for text in corpus]
    hits = sum(changed(a, b) for text, out in zip(corpus, outputs)
               for a, b in zip(text.split(), out.split()))
    return hits / words, outputs

  masked, outputs = rate(augment.Augmenter(corpus, mask_prob=0.3, replace_prob=0.0,
                                           ngram_prob=0.0), lambda a, b: b == "[MASK]")
  assert abs(masked - 0.3) < 0.03, masked
  assert all(len(o.split()) == 20 for o in outputs)
  replaced, outputs = rate(augment.Augmenter(corpus, mask_prob=0.0, replace_prob=0.5,
                                             ngram_prob=0.0), lambda a, b: a != b)
  # A drawn word equals the old one with probability ~ 1/11 (11 filler words, equally common).
  assert abs(replaced - 0.5 * 10 / 11) < 0.04, replaced
  assert {w for o in outputs for w in o.split()} <= set(FILLER)  # words from the corpus only
  draw = random.Random(2)
  sampled = augment.Augmenter(corpus, mask_prob=0.0, replace_prob=0.0, ngram_prob=0.4,
                              max_ngram=5)
  lengths = [len(sampled.augment(text, draw).split()) for text in corpus * 3]
  short = np.mean([n < 20 for n in lengths])
  assert abs(short - 0.4) < 0.07, short
  assert min(lengths) >= 1 and max(n for n in lengths if n < 20) <= 5
  # CJK text: characters are the units, replaced by characters; the mask falls back to [UNK].
  cjk = augment.Augmenter(["好吃的饭菜很香", "太慢了很差"], mask_token="[UNK]", mask_prob=0.5,
                          replace_prob=0.5, ngram_prob=0.0)
  out = cjk.augment("好吃的饭菜很香", random.Random(3))
  units = [u for u, _ in augment.split_units(out)]
  assert len(units) == 7 and all(u == "[UNK]" or augment.is_cjk(u) for u in units), out
  assert "[MASK]" not in out


def test_augmentation_min_length_keeps_short_texts_out(tmp_path):
  examples = [classifier_data.InputExample(str(i), text, None, "1")
              for i, text in enumerate(CORPUS)]
  counts = [augment.unit_count(text) for text in CORPUS]
  assert counts == [10, 10, 3, 1, 8]  # CJK characters count one each, "ok" one word
  logs = []

  def variants(min_length, name):
    settings = augment.Settings(copies=2, seed=3, mask_prob=0.2, replace_prob=0.2, ngram_prob=0.0,
                                max_ngram=5, min_length=min_length)
    augment.write_augmented(str(tmp_path / name), examples, settings, "[MASK]", {}, log=logs.append)
    with open(str(tmp_path / name / augment.AUGMENTED_FILE), encoding="utf-8") as f:
      return f.read().splitlines()

  everything, long_only = variants(0, "all"), variants(8, "long")
  assert len(everything) == 10 and len(long_only) == 6
  # The long texts' variants are the same draws as without the filter (seeded per example).
  assert long_only == everything[:4] + everything[8:]
  assert "Augmented 3 training texts (of 5: those of >= 8 words) into 6" in logs[1], logs
  assert "(of " not in logs[0]
  with pytest.raises(UsageError, match=r"--augment_min_length: no training text has 11 words or "
                     r"more \(the longest has 10\)"):
    variants(11, "none")


def test_mask_token_survives_tokenization(kit):
  from bert import tokenization
  tokenizer = augment.MaskAwareTokenizer(tokenization.FullTokenizer(kit.vocab_file, True))
  assert tokenizer.tokenize("the [MASK] was [MASK]") == ["the", "[MASK]", "was", "[MASK]"]
  assert tokenizer.tokenize("[MASK]good") == ["[MASK]", "good"]


def test_transfer_flags_are_checked():
  for overrides, flag in ((dict(augment_copies=-1), "--augment_copies"),
                          (dict(augment_mask_prob=1.5), "--augment_mask_prob"),
                          (dict(augment_mask_prob=0.6, augment_replace_prob=0.6),
                           "--augment_mask_prob + --augment_replace_prob"),
                          (dict(augment_max_ngram=0), "--augment_max_ngram"),
                          (dict(augment_min_length=-1), "--augment_min_length")):
    with pytest.raises(UsageError) as error:
      classifier_flags.check_transfer_flags(types.SimpleNamespace(
          **dict(dataclasses.asdict(DistillSettings()), **overrides)))
    assert str(error.value).startswith(flag + ":") and "\n" not in str(error.value)


def test_transfer_file_formats(tmp_path):
  path = write(str(tmp_path / "t.txt"), "first text\tsecond text\n\n  only one  \n")
  processor = classifier_data.get_processor("sst2")
  pairs = classifier_data.read_transfer_examples(path, "text", processor, pairs=True)
  assert [(e.text_a, e.text_b, e.label) for e in pairs] == [
      ("first text", "second text", None), ("only one", None, None)]
  single = classifier_data.read_transfer_examples(path, "text", processor)
  assert [e.text_a for e in single] == ["first text\tsecond text", "only one"]
  task = write(str(tmp_path / "train.tsv"), "sentence\tlabel\na fine film\t1\ndull\t0\n")
  examples = classifier_data.read_transfer_examples(task, "task", processor)
  assert [(e.text_a, e.label) for e in examples] == [("a fine film", None), ("dull", None)]
  empty = write(str(tmp_path / "empty.tsv"), "sentence\tlabel\n")
  with pytest.raises(UsageError, match="no examples found$"):
    classifier_data.read_transfer_examples(empty, "task", processor)


def write_mlm_checkpoint(directory, with_head=True, favourite="great"):
  """A random tiny pre-trained BERT whose MLM head's bias makes `favourite` its top prediction."""
  from bert import modeling
  os.makedirs(directory)
  write(os.path.join(directory, "bert_config.json"), json.dumps(tiny_config(num_layers=1)))
  config = modeling.BertConfig.from_dict(tiny_config(num_layers=1))
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    modeling.BertModel(config, False, ids)
    if with_head:
      with tf1.variable_scope("cls/predictions"):
        with tf1.variable_scope("transform"):
          x = modeling.dense(tf.zeros([1, 32]), 32, "dense")
          modeling.layer_norm(x)
        bias = np.zeros(len(VOCAB), np.float32)
        bias[VOCAB.index(favourite)] = 100.0
        bias[VOCAB.index("[MASK]")] = 1000.0  # specials are never candidates
        tf1.get_variable("output_bias", initializer=tf.constant(bias))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      return tf1.train.Saver().save(session, os.path.join(directory, "bert_model.ckpt"),
                                    write_meta_graph=False)


def test_mlm_replacement_uses_the_masked_lm_head(tmp_path):
  vocab_file = write(str(tmp_path / "vocab.txt"), "\n".join(VOCAB) + "\n")
  checkpoint = write_mlm_checkpoint(str(tmp_path / "mlm"))
  examples = [classifier_data.InputExample(str(i), text, None, "1")
              for i, text in enumerate(["the food was bad", "we ate a slow meal here , today"])]
  settings = augment.Settings(copies=2, seed=3, mask_prob=0.0, replace_prob=1.0, ngram_prob=0.0,
                              max_ngram=5)
  mlm = augment.MlmFiller(checkpoint, vocab_file, True, top_k=1)
  try:
    logs = []
    augment.write_augmented(str(tmp_path / "out"), examples, settings, "[MASK]", {"x": 1},
                            log=logs.append, mlm=mlm)
  finally:
    mlm.close()
  with open(str(tmp_path / "out" / augment.AUGMENTED_FILE), encoding="utf-8") as f:
    lines = f.read().splitlines()
  # Every one-wordpiece word is the head's favourite; "," is not a vocab piece: a corpus word.
  assert lines[:2] == ["great great great great"] * 2, lines
  words = lines[2].split()
  assert words[:6] == ["great"] * 6 and words[7] == "great" and words[6] != ","
  assert "(22 words chosen by the MLM)" in logs[0], logs  # 2 copies × (4 + 7 words)
  without = write_mlm_checkpoint(str(tmp_path / "nohead"), with_head=False)
  with pytest.raises(UsageError, match="has no masked-LM head"):
    augment.MlmFiller(without, vocab_file, True)


# -- records, cached logits, a run -----------------------------------------------------------

@pytest.fixture(scope="module")
def augmented_run(kit):
  """A cached-logit student distilled with --augment_copies=2 and a 4-line --transfer_file."""
  transfer = write(os.path.join(kit.root, "transfer.txt"),
                   "the food was good\n\nwe ate a bad meal\nthe [MASK] was great\nfine\n")
  run = DistillRun(kit.run_config("augmented", teacher_logits="cached", do_train=True, do_eval=True,
                                  num_train_steps=30, augment_copies=2, transfer_file=transfer,
                                  alpha=0.5))
  with captured() as out:
    run.run()
  return types.SimpleNamespace(run=run, log=out.getvalue(), transfer=transfer,
                               output_dir=run.config.output_dir)


def test_augmented_text_keeps_labels_out(kit, augmented_run):
  path = os.path.join(augmented_run.output_dir, augment.AUGMENTED_FILE)
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert len(lines) == 2 * 96
  assert not any("&" in line for line in lines)  # the `&label` of the training lines
  assert "Augmented 96 training texts into 192 transfer examples" in augmented_run.log


def test_cached_logits_cover_the_transfer_examples(kit, augmented_run):
  log = augmented_run.log
  assert "Training set: 96 labelled + 196 transfer examples = 292 per epoch" in log, log
  assert "Wrote teacher logits for 292 train+transfer examples" in log
  cached = os.path.join(augmented_run.output_dir,
                        TRANSFER_RECORD[:-len(".tf_record")] + TEACHER_RECORD_SUFFIX)
  examples = records(cached)
  assert len(examples) == 292
  has_label = np.array([ints(e, "has_label")[0] for e in examples])
  assert has_label.sum() == 96
  # Shuffled together: both kinds in the first and the last quarter of the file.
  assert 0 < has_label[:73].sum() < 73 and 0 < has_label[-73:].sum() < 73
  assert all(ints(e, "label_ids") == [0] for e, h in zip(examples, has_label) if not h)
  assert all(len(e.features.feature["teacher_logits"].float_list.value) == 2 for e in examples)
  # `[MASK]` in the transfer text is the vocab's [MASK] token, not `[`, `mask`, `]`.
  mask_id = VOCAB.index("[MASK]")
  assert any(mask_id in ints(e, "input_ids") for e, h in zip(examples, has_label) if not h)
  # Eval is unaffected: the dev split, every example labelled.
  with open(os.path.join(augmented_run.output_dir, "eval_results.txt")) as f:
    assert "num_examples = 32" in f.read()


def test_input_fn_parses_has_label_only_for_transfer_records(kit, augmented_run):
  """What a record file holds is in its info, not guessed from its name."""
  run = augmented_run.run
  cached = os.path.join(augmented_run.output_dir,
                        TRANSFER_RECORD[:-len(".tf_record")] + TEACHER_RECORD_SUFFIX)
  plain = os.path.join(augmented_run.output_dir, "dev" + TEACHER_RECORD_SUFFIX)
  with tf.Graph().as_default():
    transfer_batch, _ = tf1.data.make_one_shot_iterator(
        run.input_fn(cached, sidecar(cached), False)({"batch_size": 400})).get_next()
    dev_batch, _ = tf1.data.make_one_shot_iterator(
        run.input_fn(plain, sidecar(plain), False)({"batch_size": 400})).get_next()
    assert "has_label" in transfer_batch and "has_label" not in dev_batch
    assert "teacher_logits" in transfer_batch and "teacher_logits" in dev_batch
    with tf1.Session() as session:
      values = session.run(transfer_batch)
  assert values["has_label"].sum() == 96 and len(values["has_label"]) == 292


def test_cached_transfer_logits_are_reused_and_rebuilt_when_the_transfer_file_changes(
    kit, augmented_run):
  cached = os.path.join(augmented_run.output_dir,
                        TRANSFER_RECORD[:-len(".tf_record")] + TEACHER_RECORD_SUFFIX)
  mtime = os.stat(cached).st_mtime_ns
  fv = kit.run_config("augmented", teacher_logits="cached", do_train=True, augment_copies=2,
                      transfer_file=augmented_run.transfer, alpha=0.5)
  with captured() as out:
    _, info = DistillRun(fv).train_features()
  assert "Reusing augmented transfer examples" in out.getvalue()
  assert "Reusing teacher logits %s" % cached in out.getvalue()
  assert os.stat(cached).st_mtime_ns == mtime and info["num_examples"] == 292
  with open(augmented_run.transfer, "a", encoding="utf-8") as f:
    f.write("slow service\n")
  with captured() as out:
    _, info = DistillRun(fv).train_features()
  assert "Wrote teacher logits for 293 train+transfer examples" in out.getvalue(), out.getvalue()
  assert info["num_examples"] == 293 and info["num_transfer"] == 197
  assert len(records(cached)) == 293
  # Another augmentation seed: new variants, new records.
  with captured() as out:
    DistillRun(kit.run_config("augmented", teacher_logits="cached", do_train=True, augment_copies=2,
                              augment_seed=9, transfer_file=augmented_run.transfer,
                              alpha=0.5)).train_features()
  assert "Augmented 96 training texts into 192" in out.getvalue()
  assert "Wrote teacher logits for 293 train+transfer examples" in out.getvalue()


def test_online_run_with_a_task_format_transfer_file(kit):
  # The training file itself as transfer set: its labels are read and dropped.
  run = DistillRun(kit.run_config("online_transfer", do_train=True, num_train_steps=4,
                                  transfer_file=os.path.join(kit.data_dir, "train.csv"),
                                  transfer_format="task"))
  with captured() as out:
    run.run()
  assert "Training set: 96 labelled + 96 transfer examples = 192 per epoch" in out.getvalue()
  assert "Training 4 steps" in out.getvalue()
  examples = records(os.path.join(run.config.output_dir, TRANSFER_RECORD))
  assert sorted(ints(e, "has_label")[0] for e in examples) == [0] * 96 + [1] * 96
  missing = DistillRun(kit.run_config("missing", do_train=True, transfer_file="/nonexistent.txt"))
  with pytest.raises(UsageError, match="^--transfer_file /nonexistent.txt: not found$"):
    missing.train_features()


# -- the SST-2 benchmark's tiny path ---------------------------------------------------------

def write_sst2_like(data_dir):
  """GLUE SST-2 layout (`sentence<TAB>label`, a header) with a learnable synthetic task."""
  os.makedirs(data_dir)
  for split, count, seed in (("train", 64, 1), ("dev", 24, 2)):
    rows = [line.replace("&", "\t") for line in review_lines(count, seed)]
    write(os.path.join(data_dir, split + ".tsv"), "sentence\tlabel\n" + "\n".join(rows) + "\n")
  return data_dir


def test_sst2_benchmark_tiny_path_runs_end_to_end_and_reuses_its_stages(tmp_path):
  from conftest import run_entry
  data_dir = write_sst2_like(str(tmp_path / "sst2"))
  work = str(tmp_path / "work")
  args = ["bench/sst2_distill.py", "--tiny", "--data_dir", data_dir, "--work_dir", work,
          "--precision", "fp32", "--batch_size", "16", "--epochs", "2", "--augment_copies", "2"]
  result = run_entry(args, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  # The measure stage loads TensorFlow in this process: none of its start-up notices show.
  for marker in conftest.TF_NOTICE_MARKERS:
    assert marker not in result.stdout + result.stderr, (marker, result.stderr[-3000:])
  with open(os.path.join(work, "results.md"), encoding="utf-8") as f:
    table = f.read()
  for name in ("teacher", "student_alone", "distilled_logits", "distilled_transfer_x2"):
    assert "| %s |" % name in table, table
  assert "| distilled_transfer_x2 | 1 | 8 |" in table  # the same steps as the other students
  with open(os.path.join(work, "seed1", "distilled_transfer_x2", augment.AUGMENTED_FILE)) as f:
    assert len(f.read().splitlines()) == 128
  again = run_entry(args, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count("reusing") == 5, again.stdout  # convert, teacher, three students


def test_sst2_benchmark_dry_run_starts_students_from_the_teacher_when_asked(tmp_path):
  from conftest import run_entry
  data_dir = write_sst2_like(str(tmp_path / "sst2"))
  work = str(tmp_path / "work")
  result = run_entry(["bench/sst2_distill.py", "--tiny", "--dry_run", "--data_dir", data_dir,
                      "--work_dir", work, "--student_init", "teacher", "--teacher_seed", "7",
                      "--augment_copies", "3", "--augment_min_length", "4",
                      "--augment_ngram_prob", "0"], timeout=300)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  commands = {line.split("]")[0][1:]: line for line in result.stdout.splitlines()
              if line.startswith("[")}
  teacher_export = os.path.join(work, "export", "teacher")
  assert "--seed=7" in commands["teacher"].split()
  assert "--noadam_bias_correction" in commands["teacher"].split()  # Google's optimizer by default
  for name in ("student_alone", "distilled_logits", "distilled_transfer_x3_min4_ng0"):
    flags = commands["seed1/" + name].split()
    assert "--init_checkpoint=" + teacher_export in flags, flags
  transfer = commands["seed1/distilled_transfer_x3_min4_ng0"].split()
  assert {"--augment_copies=3", "--augment_min_length=4", "--augment_ngram_prob=0"} <= set(transfer)
  assert not any(f.startswith("--augment_ngram_prob") for f in commands["seed1/distilled_logits"]
                 .split())


def test_sst2_benchmark_dry_run_starts_students_from_random_weights_when_asked(tmp_path):
  from conftest import run_entry
  data_dir = write_sst2_like(str(tmp_path / "sst2"))
  work = str(tmp_path / "work")
  result = run_entry(["bench/sst2_distill.py", "--tiny", "--dry_run", "--data_dir", data_dir,
                      "--work_dir", work, "--student_init", "scratch", "--augment_copies", "",
                      "--students", "alone,variants",
                      "--variant", "tinybert:--distill_preset=tinybert"], timeout=300)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  commands = {line.split("]")[0][1:]: line.split() for line in result.stdout.splitlines()
              if line.startswith("[")}
  assert any(f.startswith("--init_checkpoint=") for f in commands["teacher"])  # MiniLM's
  for name in ("student_alone", "distilled_tinybert"):
    flags = commands["seed1/" + name]
    assert not any(f.startswith(("--init_checkpoint", "--init_layer_map")) for f in flags), flags
  assert "--distill_preset=tinybert" in commands["seed1/distilled_tinybert"]


def test_sst2_benchmark_trains_only_the_students_asked_for(tmp_path):
  from conftest import run_entry
  data_dir = write_sst2_like(str(tmp_path / "sst2"))
  work = str(tmp_path / "work")
  common = ["bench/sst2_distill.py", "--tiny", "--dry_run", "--data_dir", data_dir,
            "--work_dir", work, "--augment_copies", "2", "--seeds", "2,1"]
  result = run_entry(common + ["--students", "alone,transfer", "--teacher_bias_correction", "on"],
                     timeout=300)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  teacher = [line for line in result.stdout.splitlines() if line.startswith("[teacher]")]
  assert "--adam_bias_correction" in teacher[0].split(), teacher
  stages = [line.split("]")[0][1:] for line in result.stdout.splitlines()
            if line.startswith("[seed")]
  assert stages == ["seed2/student_alone", "seed2/distilled_transfer_x2",
                    "seed1/student_alone", "seed1/distilled_transfer_x2"], stages
  bad = run_entry(common + ["--students", "alone,logit"], timeout=300)
  assert bad.returncode != 0
  assert "--students: expected a comma-separated subset of alone,logits,transfer,variants" in \
      bad.stderr, bad.stderr[-2000:]
  unknown = run_entry(common + ["--students", "alone,transfer", "--compare_with", "logits"],
                      timeout=300)  # logits only is not trained here: nothing to pair with
  assert unknown.returncode != 0
  assert "--compare_with: 'logits' is not a distilled student of this run (expected one of " \
      "transfer_x2)" in unknown.stderr, unknown.stderr[-2000:]


def sst2_report_args(seeds):
  """bench/sst2_distill.py's parsed flags, as report() reads them."""
  import argparse
  return argparse.Namespace(tiny=True, quick=False, student_layers="1", data_dir="d",
                            max_seq_length=16, batch_size=4, precision="fp32",
                            student_init="teacher", temperature=2.0, alpha=0.7,
                            teacher_logits="cached", serving_runs=2, seeds=seeds,
                            teacher_lr=5e-5, teacher_bias_correction="on",
                            compare_with="logits")


def sst2_report_rows(accuracies):
  """The teacher's row, then a row per (student name, seed, dev accuracy), as main() makes them."""
  ms = {1: 1.0, 8: 2.0}
  rows = [dict(name="teacher", seed="-", steps=5, acc=0.9, agreement=1.0, parameters=10, ms=ms,
               wall=3.0, reused=False)]
  return rows + [dict(name=name, seed=seed, steps=9, acc=acc, agreement=0.85, parameters=5,
                      ms=ms, wall=2.0, reused=False) for name, seed, acc in accuracies]


def test_sst2_report_without_a_student_alone_leaves_the_gap_blank():
  from bench import sst2_distill
  rows = sst2_report_rows([("distilled_transfer_x2", 1, 0.8)])
  text = sst2_distill.report(sst2_report_args([1]), rows, 5, 20, 0.9)
  assert "teacher lr 5e-05, Adam bias correction on;" in text, text
  assert "| distilled_transfer_x2 | 1 | 9 | 0.8000 | 0.8500 |" in text, text
  assert "| distilled_transfer_x2 | 0.8000 | 0.0000 | 0.8500 | - | - | - |" in text, text


def test_sst2_report_compares_each_recipe_with_logits_only_seed_by_seed():
  from bench import sst2_distill
  # tinybert is better in seeds 1 and 3, worse in 2: mean (+0.03 - 0.01 + 0.01) / 3 = +1 point.
  rows = sst2_report_rows([("distilled_logits", 1, 0.80), ("distilled_logits", 2, 0.84),
                           ("distilled_logits", 3, 0.82), ("distilled_tinybert", 1, 0.83),
                           ("distilled_tinybert", 2, 0.83), ("distilled_tinybert", 3, 0.83)])
  text = sst2_distill.report(sst2_report_args([1, 2, 3]), rows, 5, 20, 0.9)
  assert "| distilled_logits | 0.8200 | 0.0200 | 0.8500 | - | - | - |" in text, text
  assert ("| distilled_tinybert | 0.8300 | 0.0000 | 0.8500 | - | - | "
          "+1.00 pt, better in 2 of 3, t = 0.87 (2 d.f.; 5 % needs 4.30) |") in text, text


def test_sst2_report_pairs_recipes_with_the_named_baseline():
  from bench import sst2_distill
  args = sst2_report_args([1, 2])
  args.compare_with = "transfer_x2"
  rows = sst2_report_rows([("distilled_logits", 1, 0.80), ("distilled_logits", 2, 0.80),
                           ("distilled_transfer_x2", 1, 0.86), ("distilled_transfer_x2", 2, 0.84),
                           ("distilled_tb05x2", 1, 0.85), ("distilled_tb05x2", 2, 0.86)])
  text = sst2_distill.report(args, rows, 5, 20, 0.9)
  assert "against distilled_transfer_x2 |" in text, text
  assert "| distilled_transfer_x2 | 0.8500 | 0.0100 | 0.8500 | - | - | - |" in text, text
  # -1 and +2 points against the transfer run, not +5 and +6 against logits only.
  assert ("| distilled_tb05x2 | 0.8550 | 0.0050 | 0.8500 | - | - | "
          "+0.50 pt, better in 1 of 2, t = 0.33 (1 d.f.; 5 % needs 12.71) |") in text, text
  assert ("| distilled_logits | 0.8000 | 0.0000 | 0.8500 | - | - | "
          "-5.00 pt, better in 0 of 2, t = -5.00 (1 d.f.; 5 % needs 12.71) |") in text, text


def test_sst2_paired_difference_gives_the_t_statistic_only_where_there_is_one():
  from bench import sst2_distill
  # Seeds 1-4 of the 19th session: +3, -2, +12, +4 of 872 dev examples.
  deltas = [d / 872 for d in (3, -2, 12, 4)]
  assert sst2_distill.paired_difference(deltas) == \
      "+0.49 pt, better in 3 of 4, t = 1.47 (3 d.f.; 5 % needs 3.18)"
  assert sst2_distill.paired_difference([0.01]) == "+1.00 pt, better in 1 of 1"
  assert sst2_distill.paired_difference([0.01, 0.01]) == "+1.00 pt, better in 2 of 2"
  assert sst2_distill.paired_difference([0.01 * (i % 3) for i in range(12)]).endswith(
      ", t = 4.06 (11 d.f.; 5 % needs 2.20)")
  # Past the table the critical value is left out, not guessed.
  assert sst2_distill.paired_difference([0.01 * (i % 3) for i in range(32)]).endswith(
      ", t = 6.66 (31 d.f.)")


def test_distill_run_with_an_mlm_checkpoint(kit, tmp_path):
  checkpoint = write_mlm_checkpoint(str(tmp_path / "mlm"), favourite="fine")
  fv = kit.run_config("mlm_run", do_train=True, augment_copies=1, augment_mlm_checkpoint=checkpoint,
                      augment_mlm_top_k=1, augment_replace_prob=0.5)
  with captured() as out:
    _, info = DistillRun(fv).train_features()
  assert "words chosen by the MLM" in out.getvalue(), out.getvalue()
  assert info["num_transfer"] == 96
  with open(os.path.join(fv.output_dir, augment.AUGMENTED_FILE), encoding="utf-8") as f:
    text = f.read()
  assert text.count("fine") > sum(line.count("fine") for line in review_lines(96, 0))
