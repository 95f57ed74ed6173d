"""Processors, cached unpadded features, dynamic padding and length bucketing."""

import collections
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bert import classifier, classifier_data, tokenization
from bert.classifier_run import ClassifierRun
from bert.run_config import RunConfig
from bert.errors import UsageError

import conftest

conftest.use_exact_float32()

tf1 = tf.compat.v1


def write(path, text):
  with open(str(path), "w", encoding="utf-8") as f:
    f.write(text)
  return str(path)


# -- processors ----------------------------------------------------------------------------------

def test_emotion_processor_splits_on_last_ampersand(tmp_path):
  write(tmp_path / "train.csv", "好吃&不贵&1\n\nA&B&C &0\n太慢了&0\n")
  write(tmp_path / "test.csv", "好吃&不贵&1\n没有标签\n")
  processor = classifier_data.get_processor("emotion")
  examples = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.text_b, e.label) for e in examples] == [
      ("好吃&不贵", None, "1"), ("A&B&C", None, "0"), ("太慢了", None, "0")]
  assert examples[1].source.endswith("train.csv:3")  # blank lines keep line numbers
  assert processor.get_labels() == ["0", "1"]
  test = processor.get_test_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in test] == [("好吃&不贵", "1"), ("没有标签", None)]


@pytest.mark.parametrize("content, words", [
    ("好吃&1\n不好吃\n", ["train.csv:2", "text&label"]),
    ("好吃&1\n难吃&2\n", ["train.csv:2", "'2'", "label"]),
    ("好吃&1\n &0\n", ["train.csv:2", "empty text"]),
])
def test_emotion_processor_bad_lines_name_file_and_line(tmp_path, content, words):
  write(tmp_path / "train.csv", content)
  with pytest.raises(UsageError) as info:
    classifier_data.get_processor("emotion").get_train_examples(str(tmp_path))
  for word in words:
    assert word in str(info.value)


def test_read_lines_errors(tmp_path):
  with pytest.raises(UsageError, match="not found"):
    list(classifier_data.read_lines(str(tmp_path / "missing.csv")))
  with pytest.raises(UsageError, match="empty"):
    list(classifier_data.read_lines(write(tmp_path / "empty.csv", "\n \n")))
  bad = tmp_path / "latin1.csv"
  bad.write_bytes("ok&1\n".encode("utf-8") + "café&0\n".encode("latin-1"))
  with pytest.raises(UsageError, match=r"latin1.csv:2: not valid UTF-8"):
    list(classifier_data.read_lines(str(bad)))
  bom = write(tmp_path / "bom.csv", "\ufeff好&1\n")
  assert list(classifier_data.read_lines(bom)) == [(1, "好&1")]


def test_csv_processor_header_and_named_columns(tmp_path):
  write(tmp_path / "train.csv", 'id,review,sentiment\n1,"good, very good",pos\n2,bad,neg\n'
                                "3,so so,mid\n4,fast,pos\n")
  write(tmp_path / "dev.csv", "id,review,sentiment\n7,slow,neg\n")
  processor = classifier_data.get_processor("csv", text_column="review", label_column="sentiment",
                                            has_header=True)
  processor.prepare(str(tmp_path))
  assert processor.get_labels() == ["mid", "neg", "pos"]  # discovered from train, sorted
  examples = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in examples] == [
      ("good, very good", "pos"), ("bad", "neg"), ("so so", "mid"), ("fast", "pos")]
  assert [(e.text_a, e.label) for e in processor.get_dev_examples(str(tmp_path))] == [
      ("slow", "neg")]
  bad = classifier_data.get_processor("csv", text_column="text", label_column="sentiment",
                                      has_header=True)
  with pytest.raises(UsageError, match="column 'text' not found"):
    bad.prepare(str(tmp_path))


def test_tsv_processor_indices_pairs_and_given_labels(tmp_path):
  write(tmp_path / "train.tsv", "b\tfirst a\tfirst b\na\tsecond a\tsecond b\n")
  write(tmp_path / "dev.tsv", "c\tthird a\tthird b\n")
  write(tmp_path / "test.tsv", "\tfourth a\tfourth b\n")
  processor = classifier_data.get_processor("csv", text_column="1", text_b_column="2",
                                            label_column="0")
  processor.prepare(str(tmp_path))
  assert processor.get_labels() == ["a", "b"]
  train = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.text_b, e.label) for e in train] == [
      ("first a", "first b", "b"), ("second a", "second b", "a")]
  with pytest.raises(UsageError, match=r"dev.tsv:1: label 'c' is not in the label list"):
    processor.get_dev_examples(str(tmp_path))
  # An unlabelled test file may leave the label column empty.
  assert [(e.text_a, e.label) for e in processor.get_test_examples(str(tmp_path))] == [
      ("fourth a", None)]
  given = classifier_data.get_processor("csv", text_column="1", text_b_column="2",
                                        label_column="0", labels=["c", "b", "a"])
  given.prepare(str(tmp_path))
  assert given.get_labels() == ["c", "b", "a"]  # a given list keeps its order
  assert len(given.get_dev_examples(str(tmp_path))) == 1


def test_csv_empty_label_is_no_label_not_a_class(tmp_path):
  write(tmp_path / "train.csv", "text,label\ngood,pos\nbad,\nfast,neg\n")
  processor = classifier_data.get_processor("csv", text_column="text", label_column="label",
                                            has_header=True)
  processor.prepare(str(tmp_path))
  assert processor.get_labels() == ["neg", "pos"]
  with pytest.raises(UsageError, match=r"train.csv:3: no label"):
    processor.get_train_examples(str(tmp_path))


def test_mrpc_format(tmp_path):
  header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
  write(tmp_path / "train.tsv", header + "1\t702876\t702977\tAmrozi accused his brother .\t"
        "Referring to him , Amrozi accused his brother .\n0\t2108705\t2108831\tYucaipa owned "
        "Dominick 's .\tYucaipa bought Dominick 's in 1995 .\n")
  write(tmp_path / "test.tsv", "Index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\t"
        "PCCW 's chief .\tCommon Denominator .\n")
  processor = classifier_data.get_processor("MRPC")
  train = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.text_b, e.label) for e in train] == [
      ("Amrozi accused his brother .", "Referring to him , Amrozi accused his brother .", "1"),
      ("Yucaipa owned Dominick 's .", "Yucaipa bought Dominick 's in 1995 .", "0")]
  test = processor.get_test_examples(str(tmp_path))
  assert [(e.text_a, e.text_b, e.label) for e in test] == [
      ("PCCW 's chief .", "Common Denominator .", None)]
  with pytest.raises(UsageError, match="unknown task 'qqp'"):
    classifier_data.get_processor("qqp")


# -- features ------------------------------------------------------------------------------------

def test_truncation_is_counted(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file, True)
  examples = conftest.make_examples([("好" * 20, "1"), ("差差", "0"), ("很" * 6, "0")])
  examples.append(classifier_data.InputExample("pair", "好" * 9, "差" * 3, "1"))
  features = classifier_data.convert_examples_to_features(examples, ["0", "1"], 8, tokenizer)
  assert [f.truncated for f in features] == [True, False, False, True]
  assert [len(f.input_ids) for f in features] == [8, 4, 8, 8]
  vocab = tokenizer.vocab
  assert features[0].input_ids == [vocab["[CLS]"]] + [vocab["好"]] * 6 + [vocab["[SEP]"]]
  # Pairs lose tokens from the longer text: [CLS] 好×3 [SEP] 差×2 [SEP].
  assert features[3].input_ids == ([vocab["[CLS]"]] + [vocab["好"]] * 3 + [vocab["[SEP]"]] +
                                   [vocab["差"]] * 2 + [vocab["[SEP]"]])
  assert features[3].segment_ids == [0] * 5 + [1] * 3
  assert [f.label_id for f in features] == [1, 0, 0, 1]


def _run_for(tmp_path, default_vocab, output_dir="out", **overrides):
  values = dict(task_name="csv", data_dir=str(tmp_path / "data"), vocab_file=default_vocab,
                bert_config_file=str(tmp_path / "bert_config.json"),
                output_dir=str(tmp_path / output_dir), do_train=True, max_seq_length=16,
                labels="0,1")
  values.update(overrides)
  return ClassifierRun(RunConfig.from_flags(conftest.classifier_flags(**values)))


def test_features_are_cached_and_rebuilt_when_inputs_change(tmp_path, vocab_file, capsys):
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  lines = conftest.review_lines(40, seed=3, max_len=30)
  train = write(data_dir / "train.tsv", "".join("%s\t%s\n" % line for line in lines))
  conftest.write_config(tmp_path / "bert_config.json")

  def build(**overrides):
    capsys.readouterr()
    path, info = _run_for(tmp_path, vocab_file, **overrides).features("train")
    return path, info, os.stat(path).st_mtime_ns, capsys.readouterr().out

  path, info, mtime, out = build()
  assert "Wrote" in out and info["num_examples"] == 40
  assert info["num_truncated"] == sum(len(text) > 14 for text, _ in lines) > 0
  record_ids = [list(r) for r in _record_input_ids(path)]
  assert len(record_ids) == 40 and max(map(len, record_ids)) == 16

  _, again, mtime2, out = build()
  assert "Reusing" in out and "Wrote" not in out
  assert mtime2 == mtime and again == info

  changes = [
      ("max_seq_length", dict(max_seq_length=20)),
      ("lower-casing", dict(do_lower_case=False)),
      ("label list", dict(labels="1,0")),
  ]
  for what, overrides in changes:
    _, _, _, out = build(**overrides)
    assert "Wrote" in out, what
    _, _, _, out = build()  # and back: rebuilt again, since the cache holds the other one
    assert "Wrote" in out, what

  # A different vocab file of the same size (one token replaced).
  other_vocab = conftest.write_vocab(tmp_path / "vocab2.txt",
                                     conftest.VOCAB_TOKENS[:-1] + ["zebra"])
  _, _, _, out = build(vocab_file=other_vocab)
  assert "Wrote" in out
  _, _, _, out = build(vocab_file=other_vocab)
  assert "Reusing" in out

  # The data file changes (same size, one label flipped).
  text, label = lines[0]
  write(train, "".join("%s\t%s\n" % line for line in [(text, "1" if label == "0" else "0")] +
                       lines[1:]))
  _, info, _, out = build(vocab_file=other_vocab)
  assert "Wrote" in out and info["num_examples"] == 40


def test_feature_cache_of_an_older_format_is_rebuilt_not_misread(tmp_path, vocab_file, capsys):
  """Format 2 sidecars did not say which optional fields the records hold (the run guessed it from
  the file name): their fingerprint no longer matches, so they are rebuilt once."""
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  write(data_dir / "train.tsv", "".join("%s\t%s\n" % line
                                        for line in conftest.review_lines(12, seed=4)))
  conftest.write_config(tmp_path / "bert_config.json")
  path, info = _run_for(tmp_path, vocab_file).features("train")
  assert info["has_teacher_logits"] is False and info["has_label"] is False
  old = dict(info, fingerprint=dict(info["fingerprint"], format=2))
  del old["has_teacher_logits"], old["has_label"]
  with open(path + ".json", "w", encoding="utf-8") as f:
    json.dump(old, f)
  capsys.readouterr()
  _, rebuilt = _run_for(tmp_path, vocab_file).features("train")
  assert "Wrote" in capsys.readouterr().out
  assert rebuilt["fingerprint"]["format"] == classifier_data.FEATURE_FORMAT_VERSION == 3
  assert rebuilt["has_teacher_logits"] is False and rebuilt["has_label"] is False


def _record_input_ids(path):
  for record in tf.data.TFRecordDataset(path):
    example = tf.train.Example.FromString(record.numpy())
    yield tuple(example.features.feature["input_ids"].int64_list.value)


def _features_of(tmp_path, vocab_file, count=29, max_seq_length=40, seed=11, max_len=45,
                 long_at=None):
  lines = conftest.review_lines(count, seed=seed, min_len=1, max_len=max_len)
  if long_at is not None:
    lines[long_at] = ("好" * 60, "1")
  record_file = str(tmp_path / "records.tf_record")
  features = conftest.write_feature_records(record_file, conftest.make_examples(lines), ["0", "1"],
                                            vocab_file, max_seq_length)
  return record_file, features


def _batches(input_fn, batch_size):
  return [{k: v.numpy() for k, v in features.items()}
          for features, _ in input_fn({"batch_size": batch_size})]


def test_writing_features_removes_temp_files_of_killed_writers(tmp_path):
  import subprocess
  import sys
  finished = subprocess.Popen([sys.executable, "-c", "pass"])
  finished.wait()  # a pid that no longer runs, as after kill -9
  record_file = str(tmp_path / "train.tf_record")
  dead = [record_file + ".tmp-%d" % finished.pid, record_file + ".tmp-%d.json" % finished.pid]
  alive = record_file + ".tmp-%d" % os.getppid()  # a writer still running: left alone
  for path in dead + [alive]:
    write(path, "partial")
  feature = classifier_data.InputFeatures([2, 5, 3], [0, 0, 0], 1)
  classifier_data.write_records(record_file, [classifier_data.feature_to_example(feature)],
                                {"test": 1}, {})
  assert sorted(os.listdir(str(tmp_path))) == sorted(
      ["train.tf_record", "train.tf_record.json", os.path.basename(alive)])


def test_dynamic_padding_gives_the_same_logits_as_fixed(tmp_path, vocab_file):
  # Mostly short examples, and a long one (truncated to 40) in the middle batch.
  record_file, features = _features_of(tmp_path, vocab_file, max_len=25, long_at=13)
  assert [f.truncated for f in features].count(True) == 1
  fixed = _batches(classifier_data.input_fn_builder(record_file, False, 40, padding="fixed"), 8)
  dynamic = _batches(classifier_data.input_fn_builder(record_file, False, 40, padding="dynamic"),
                     8)
  assert all(b["input_ids"].shape[1] == 40 for b in fixed)
  assert [b["input_ids"].shape[1] for b in dynamic] == [
      max(len(f.input_ids) for f in features[i:i + 8]) for i in range(0, len(features), 8)]
  assert min(b["input_ids"].shape[1] for b in dynamic) < 40

  with tf.Graph().as_default():
    tf1.set_random_seed(7)
    ph = {n: tf1.placeholder(tf.int32, [None, None]) for n in
          ("input_ids", "input_mask", "segment_ids")}
    logits, _ = classifier.classifier_logits(conftest.tiny_config(), False, ph["input_ids"],
                                             ph["input_mask"], ph["segment_ids"], 2)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())

      def run(batches):
        return np.concatenate([session.run(logits, {ph[n]: b[n] for n in ph}) for b in batches])

      fixed_logits, dynamic_logits = run(fixed), run(dynamic)
  labels = np.concatenate([b["label_ids"] for b in dynamic])
  assert labels.tolist() == [f.label_id for f in features]  # eval keeps the file order
  assert fixed_logits.shape == (len(features), 2)
  np.testing.assert_allclose(dynamic_logits, fixed_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_epochs", [1, 2])
def test_bucketing_keeps_every_example_once_per_epoch(tmp_path, vocab_file, num_epochs):
  record_file, features = _features_of(tmp_path, vocab_file, count=61, max_seq_length=40)
  input_fn = classifier_data.input_fn_builder(record_file, True, 40, padding="dynamic", seed=3,
                                              num_epochs=num_epochs)
  batches = _batches(input_fn, 4)
  bounds = classifier_data.default_bucket_boundaries(40)
  assert bounds == [16, 32, 40]
  rows = collections.Counter()
  for batch in batches:
    ids, mask, segments = batch["input_ids"], batch["input_mask"], batch["segment_ids"]
    assert ids.shape == mask.shape == segments.shape
    assert ids.shape[0] <= 4 and ids.shape[1] in bounds  # padded to the bucket's bound
    lengths = mask.sum(axis=1)
    # Every row belongs in this bucket: longer than the previous bound.
    lower = max([b for b in bounds if b < ids.shape[1]] or [0])
    assert np.all(lengths > lower) and np.all(lengths <= ids.shape[1])
    for row, length in zip(ids, lengths):
      assert np.all(row[length:] == 0)
    # The mask is ones over each example, zeros over its padding.
    np.testing.assert_array_equal(mask, np.arange(ids.shape[1])[None, :] < lengths[:, None])
    for row, length, label in zip(ids, lengths, batch["label_ids"]):
      rows[(tuple(row[:length].tolist()), int(label))] += 1
  expected = collections.Counter((tuple(f.input_ids), f.label_id) for f in features)
  assert rows == collections.Counter({k: v * num_epochs for k, v in expected.items()})
  # Shuffled: not the file order.
  first = [tuple(r[:m.sum()].tolist()) for b in batches[:3] for r, m in
           zip(b["input_ids"], b["input_mask"])]
  assert first != [tuple(f.input_ids) for f in features[:len(first)]]


def test_padding_flag_is_checked():
  with pytest.raises(UsageError, match="--padding"):
    classifier_data.input_fn_builder("x.tf_record", False, 16, padding="bucket")
