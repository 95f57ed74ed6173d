"""Knowledge distillation: Hinton's loss, the frozen teacher in the student's graph, cached
teacher logits, the teacher checks, and --init_layer_map.

Everything runs in-process on tiny models: one module-scoped kit builds a learnable synthetic
takeaway-format dataset, its vocab, a trained 2-layer teacher export, an untrained 4-layer
teacher export and a student distilled from the trained teacher, shared by the tests.
"""

import json
import os
import random
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

import conftest
from bert import classifier, classifier_run, distillation, export, modeling
from bert.errors import UsageError, run_main
from bert.distill_features import TEACHER_RECORD_SUFFIX
from bert.distill_run import DistillRun
from bert.training import ModeKeys

tf1 = tf.compat.v1

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = list("好赞香")
NEGATIVE = list("差慢贵")
FILLER = list("外卖送餐饭菜味道一般服务态度包装今天我们点了个")
VOCAB = SPECIALS + POSITIVE + NEGATIVE + FILLER + ["ok", "bad", "##s"]
LABELS = ["0", "1"]
MAX_SEQ_LENGTH = 32


def tiny_config(num_layers=2, hidden=32, vocab_size=len(VOCAB)):
  return {"vocab_size": vocab_size, "hidden_size": hidden, "num_hidden_layers": num_layers,
          "num_attention_heads": 2, "intermediate_size": 2 * hidden, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
          "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02}


def write_json(path, obj):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f)
  return path


def write_lines(path, lines):
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return path


def review_lines(count, seed):
  """`text&label`: label 1 iff the text holds a positive character (else a negative one)."""
  rng = random.Random(seed)
  lines = []
  for index in range(count):
    label = index % 2
    body = [rng.choice(FILLER) for _ in range(rng.randint(3, 14))]
    for _ in range(rng.randint(1, 2)):
      body.insert(rng.randrange(len(body) + 1), rng.choice(POSITIVE if label else NEGATIVE))
    lines.append("%s&%d" % ("".join(body), label))
  return lines


run_config = conftest.run_config
captured = conftest.captured


def one_line(error):
  message = str(error)
  assert "\n" not in message and message.strip() == message, message
  return message


class Kit(object):
  """The shared dataset, vocab, configs, a trained teacher export and an untrained deep one."""

  def __init__(self, root):
    self.root = root
    self.data_dir = os.path.join(root, "data")
    os.makedirs(self.data_dir)
    for offset, (split, count) in enumerate((("train", 256), ("dev", 64), ("test", 16))):
      write_lines(os.path.join(self.data_dir, split + ".csv"), review_lines(count, seed=offset))
    self.vocab_file = write_lines(os.path.join(root, "vocab.txt"), VOCAB)
    self.teacher_config = write_json(os.path.join(root, "teacher.json"), tiny_config(2, 32))
    self.student_config = write_json(os.path.join(root, "student.json"), tiny_config(1, 32))
    self.deep_config = write_json(os.path.join(root, "deep.json"), tiny_config(4, 32))
    self.mapped_config = write_json(os.path.join(root, "mapped.json"), tiny_config(2, 32))
    self.teacher_export = os.path.join(root, "teacher_export")
    self.weak_export = os.path.join(root, "weak_export")
    with captured():
      self.train_plain("teacher", self.teacher_config, 80, export_dir=self.teacher_export)
      self.teacher_dir = export.resolve_version_dir(self.teacher_export)
      self.weak_dir = self.export_untrained(self.deep_config, self.weak_export)

  def config(self, output_dir, distill=True, **overrides):
    values = dict(task_name="emotion", data_dir=self.data_dir, vocab_file=self.vocab_file,
                  output_dir=os.path.join(self.root, output_dir), max_seq_length=MAX_SEQ_LENGTH,
                  train_batch_size=32, eval_batch_size=32, learning_rate=2e-3,
                  warmup_proportion=0.0, bert_config_file=self.student_config,
                  teacher_model=self.teacher_export)
    values.update(overrides)
    return run_config(distill, **values)

  def train_plain(self, output_dir, config, steps, **overrides):
    """run_classifier.py's sequence: a model trained on the labels only (and exported)."""
    config = self.config(output_dir, False, bert_config_file=config, do_train=True,
                         num_train_steps=steps, do_export="export_dir" in overrides,
                         temperature=1.0, **overrides)
    classifier_run.ClassifierRun(config).run()
    return config.output_dir

  def distill(self, output_dir, **overrides):
    """A DistillRun (not yet run), by default a 1-layer student of the trained teacher."""
    return DistillRun(self.config(output_dir, **overrides))

  def export_untrained(self, config_file, export_dir, seed=7):
    config = modeling.BertConfig.from_json_file(config_file)
    prefix = os.path.join(self.root, "untrained", "model.ckpt")
    with tf.Graph().as_default():
      tf1.set_random_seed(seed)
      ids = tf1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(config, False, ids, ids, ids, len(LABELS))
      with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        checkpoint = tf1.train.Saver().save(session, prefix)
    return export.export_saved_model(export_dir, checkpoint, config, LABELS, self.vocab_file,
                                     True, MAX_SEQ_LENGTH)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
  return Kit(str(tmp_path_factory.mktemp("distill")))


# -- Hinton's loss ---------------------------------------------------------------------------

def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _random_logits(seed, batch=6, num_labels=3):
  """(student logits, teacher logits, labels) of a random batch."""
  rng = np.random.RandomState(seed)
  student = (rng.randn(batch, num_labels) * 3).astype(np.float32)
  teacher = (rng.randn(batch, num_labels) * 3).astype(np.float32)
  return student, teacher, rng.randint(0, num_labels, batch).astype(np.int32)


def test_kd_loss_matches_numpy_and_stops_teacher_gradients():
  batch, num_labels = 6, 3
  student, teacher, labels = _random_logits(0, batch, num_labels)
  hard_ref = -_log_softmax(student)[np.arange(batch), labels]
  cases = [(t, a) for t in (0.5, 1.0, 2.0, 5.0) for a in (0.0, 0.3, 1.0)]
  with tf.Graph().as_default():
    s_in = tf1.placeholder(tf.float32, [None, num_labels])
    t_in = tf1.placeholder(tf.float32, [None, num_labels])
    y_in = tf1.placeholder(tf.int32, [None])
    built = {}
    for t, a in cases:
      loss, hard, soft = distillation.kd_loss(s_in, t_in, y_in, t, a)
      grad_s, grad_t = tf.gradients(tf.reduce_sum(loss), [s_in, t_in])
      assert grad_t is None, "gradients reach the teacher logits (T=%s, alpha=%s)" % (t, a)
      built[t, a] = (loss, hard, soft, grad_s)
    with tf1.Session() as session:
      values = session.run(built, {s_in: student, t_in: teacher, y_in: labels})
  for (t, a), (loss, hard, soft, grad_s) in values.items():
    soft_ref = -np.sum(np.exp(_log_softmax(teacher / t)) * _log_softmax(student / t), -1) * t * t
    np.testing.assert_allclose(hard, hard_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(soft, soft_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, (1 - a) * hard_ref + a * soft_ref, rtol=1e-5, atol=1e-5)
    if a == 0.0:
      np.testing.assert_allclose(loss, hard_ref, rtol=1e-6, atol=1e-6)  # plain CE
    if a == 1.0:
      np.testing.assert_allclose(loss, soft_ref, rtol=1e-5, atol=1e-5)  # pure soft CE * T^2
    # d loss / d student: (1-a)(p - y) + a*T*(softmax(s/T) - softmax(t/T)).
    p = np.exp(_log_softmax(student))
    grad_ref = (1 - a) * (p - np.eye(num_labels)[labels]) + a * t * (
        np.exp(_log_softmax(student / t)) - np.exp(_log_softmax(teacher / t)))
    np.testing.assert_allclose(grad_s, grad_ref, rtol=1e-4, atol=1e-5)
    if a > 0:
      assert np.abs(grad_s).max() > 1e-3


def test_agreement_and_kl():
  teacher = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
  agreement, kl = distillation.agreement_and_kl(teacher, teacher)
  assert agreement == 1.0 and abs(kl) < 1e-9
  agreement, kl = distillation.agreement_and_kl(teacher, -teacher)
  assert agreement == 0.0 and kl > 0.1


def record_fields(record_file, name):
  examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(record_file)]
  return [list(e.features.feature[name].int64_list.value) for e in examples]


# -- online and cached teacher logits --------------------------------------------------------

def test_online_and_cached_losses_match_on_the_same_batch(kit):
  run = kit.distill("equal", teacher_logits="cached", alpha=0.7, temperature=3.0, do_train=True)
  with captured():
    cached_file, info = run.teacher_features("train")
  assert info["num_examples"] == 256 and info["teacher_accuracy"] >= 0.95
  # The teacher pass batches by length but writes the records back in their order.
  plain_file = os.path.join(run.config.output_dir, "train.tf_record")
  assert record_fields(cached_file, "input_ids") == record_fields(plain_file, "input_ids")
  assert record_fields(cached_file, "label_ids") == record_fields(plain_file, "label_ids")
  with tf.Graph().as_default():
    tf1.set_random_seed(1)
    dataset = run.input_fn(cached_file, info, False)({"batch_size": 40})
    features, _ = tf1.data.make_one_shot_iterator(dataset).get_next()
    assert "teacher_logits" in features
    logits, _ = classifier.classifier_logits(run.config.bert_config, False, features["input_ids"],
                                             features["input_mask"], features["segment_ids"], 2)
    build = run.loss_builder()
    cached = build(features, logits, features["label_ids"], 2, ModeKeys.TRAIN)
    online_features = {k: v for k, v in features.items() if k != "teacher_logits"}
    online = build(online_features, logits, features["label_ids"], 2, ModeKeys.TRAIN)
    graph = tf1.get_default_graph()
    teacher_ops = [op for op in graph.get_operations() if op.name.startswith("teacher/")]
    assert teacher_ops, "the online loss did not import the teacher"
    online_teacher = graph.get_tensor_by_name("teacher/" + run.teacher.frozen_graph()[2])
    fetch = {"cached": cached.per_example_loss, "online": online.per_example_loss,
             "cached_soft": cached.summaries["soft_loss"],
             "online_soft": online.summaries["soft_loss"],
             "teacher_cached": features["teacher_logits"], "teacher_online": online_teacher}
    batches = []
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      while True:
        try:
          batches.append(session.run(fetch))
        except tf.errors.OutOfRangeError:
          break
  assert sum(len(b["cached"]) for b in batches) == 256
  for b in batches:
    np.testing.assert_allclose(b["teacher_online"], b["teacher_cached"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(b["online"], b["cached"], atol=1e-5, rtol=0)
    assert abs(b["online_soft"] - b["cached_soft"]) <= 1e-5
  # The teacher is confident and not constant: the comparison is not between zeros.
  spread = np.concatenate([b["teacher_cached"] for b in batches])
  assert np.std(spread[:, 1] - spread[:, 0]) > 0.5


# -- students --------------------------------------------------------------------------------

def checkpoint_variables(checkpoint_or_dir):
  path = tf.train.latest_checkpoint(checkpoint_or_dir) or checkpoint_or_dir
  return dict(tf.train.list_variables(path))


def training_graph(run, cached):
  """(GraphDef, variable names) of the student's training step as DistillRun builds it for the
  trainer, on a batch with (cached) or without (online) teacher logits."""
  with tf.Graph().as_default() as graph, captured():
    features = {name: tf1.placeholder(tf.int32, [None, None], name=name)
                for name in ("input_ids", "input_mask", "segment_ids")}
    features["label_ids"] = tf1.placeholder(tf.int32, [None], name="label_ids")
    if cached:
      features["teacher_logits"] = tf1.placeholder(tf.float32, [None, 2], name="teacher_logits")
    tf1.train.get_or_create_global_step()
    spec = run.trainer.model_fn(features, None, ModeKeys.TRAIN, {})
    assert spec.train_op is not None
    return graph.as_graph_def(), {v.op.name for v in tf1.global_variables()}


def export_graph(version_dir):
  from tensorflow.core.protobuf import saved_model_pb2
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  (meta_graph,) = saved_model.meta_graphs
  return meta_graph.graph_def


def read_results(path):
  with open(path, encoding="utf-8") as f:
    return {k.strip(): float(v) for k, v in (line.split("=", 1) for line in f if "=" in line)}


class Trained(object):
  def __init__(self, output_dir, log, export_base=None):
    self.output_dir = output_dir
    self.log = log
    self.version_dir = export.resolve_version_dir(export_base) if export_base else None


@pytest.fixture(scope="module")
def online_student(kit):
  """A 1-layer student trained on the trained teacher's soft labels alone (alpha=1), online."""
  export_base = os.path.join(kit.root, "online_export")
  run = kit.distill("online", alpha=1.0, temperature=2.0, num_train_steps=150, do_train=True,
                    do_eval=True, do_export=True, export_dir=export_base)
  with captured() as out:
    run.run()
  return Trained(run.config.output_dir, out.getvalue(), export_base)


@pytest.fixture(scope="module")
def plain_student(kit):
  """The same student architecture trained by run_classifier's path, without a teacher."""
  export_base = os.path.join(kit.root, "plain_export")
  with captured() as out:
    output_dir = kit.train_plain("plain", kit.student_config, 3, export_dir=export_base)
  return Trained(output_dir, out.getvalue(), export_base)


@pytest.fixture(scope="module")
def cached_student(kit):
  run = kit.distill("cached", teacher_logits="cached", alpha=0.5, num_train_steps=10,
                    do_train=True)
  with captured() as out:
    run.run()
  return Trained(run.config.output_dir, out.getvalue())


def test_student_trained_on_soft_labels_agrees_with_teacher(online_student):
  results = read_results(os.path.join(online_student.output_dir, "eval_results.txt"))
  assert results["teacher_agreement"] >= 0.9, results
  assert results["kl_teacher_student"] < 0.2, results
  assert results["num_examples"] == 64 and results["global_step"] == 150
  # A good teacher is reported, not warned about, before training starts.
  log = online_student.log
  assert "WARNING" not in log
  assert log.index("accuracy on the dev split") < log.index("Training 150 steps")


def test_student_checkpoint_and_export_hold_no_teacher(kit, online_student, cached_student,
                                                       plain_student):
  plain = checkpoint_variables(plain_student.output_dir)
  for student in (online_student, cached_student):
    names = checkpoint_variables(student.output_dir)
    assert not [n for n in names if n.startswith("teacher")]
    assert names == plain  # same names and shapes as a student trained without a teacher

  # Sanity: the online training step does hold the teacher, folded into constants (so the
  # Saver, which saves the global variables, cannot write it)...
  run = kit.distill("graphs", alpha=0.5, do_train=True)
  graph_def, variables = training_graph(run, cached=False)
  teacher_nodes = [n for n in graph_def.node if n.name.startswith("teacher/")]
  assert teacher_nodes, "the online training graph has no teacher: this test would be vacuous"
  assert not [n for n in teacher_nodes if n.op in ("VariableV2", "VarHandleOp", "Variable")]
  constant_bytes = sum(len(n.attr["value"].tensor.tensor_content) for n in teacher_nodes
                       if n.op == "Const")
  teacher_shapes = checkpoint_variables(os.path.join(kit.teacher_dir, "variables", "variables"))
  teacher_bytes = 4 * sum(int(np.prod(s)) for s in teacher_shapes.values())
  assert constant_bytes >= 0.9 * teacher_bytes, (constant_bytes, teacher_bytes)
  assert variables == set(plain)
  # ...and the cached one does not even import it.
  graph_def, variables = training_graph(run, cached=True)
  assert not [n for n in graph_def.node if n.name.startswith("teacher/")]
  assert variables == set(plain)

  # The student export: no teacher node, the student's variables only, a plain student's size.
  nodes = export_graph(online_student.version_dir).node
  assert not [n.name for n in nodes if n.name.startswith("teacher")]
  exported = checkpoint_variables(os.path.join(online_student.version_dir, "variables",
                                               "variables"))
  assert exported == checkpoint_variables(os.path.join(plain_student.version_dir, "variables",
                                                       "variables"))
  size = os.path.getsize(os.path.join(online_student.version_dir, "saved_model.pb"))
  plain_size = os.path.getsize(os.path.join(plain_student.version_dir, "saved_model.pb"))
  assert abs(size - plain_size) <= 0.1 * plain_size, (size, plain_size)
  info = export.read_export_info(online_student.version_dir)
  assert info["temperature"] == 1.0 and info["bert_config"]["num_hidden_layers"] == 1


# -- the teacher's checks --------------------------------------------------------------------

def test_mismatched_teacher_is_a_clear_usage_error(kit, tmp_path, capsys):
  swapped = list(VOCAB)
  swapped[6], swapped[7] = swapped[7], swapped[6]
  swapped_vocab = write_lines(str(tmp_path / "vocab.txt"), swapped)
  cases = [
      (dict(task_name="csv", labels="1,0"), ["label list [0, 1]", "[1, 0]"]),
      (dict(vocab_file=swapped_vocab), ["vocab differs", "--vocab_file", "line 7"]),
      (dict(do_lower_case=False), ["do_lower_case=True", "--do_lower_case=False"]),
      (dict(max_seq_length=48), ["max_seq_length 32", "--max_seq_length 48"]),
  ]
  for overrides, words in cases:
    with pytest.raises(UsageError) as error:
      kit.distill("mismatch", do_train=True, **overrides)
    message = one_line(error.value)
    assert message.startswith("--teacher_model %s:" % kit.teacher_dir), message
    for word in words:
      assert word in message, (word, message)
  # The entry point prints it as one line and exits 1.
  with pytest.raises(SystemExit) as exit_info:
    run_main(lambda argv: kit.distill("mismatch", do_train=True, max_seq_length=48), [])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: --teacher_model") and "\n" not in err


def test_teacher_path_base_dir_and_missing_saved_model(kit, tmp_path):
  base = tmp_path / "base"
  shutil.copytree(kit.teacher_dir, str(base / "5"))
  shutil.copytree(kit.weak_dir, str(base / "12"))  # newest by number (not by string order)
  os.makedirs(str(base / "20"))  # a version still being written: no saved_model.pb yet
  shutil.copytree(kit.teacher_dir, str(base / "latest"))  # not a numeric version
  teacher = distillation.Teacher(str(base))
  assert teacher.version_dir == str(base / "12")
  assert teacher.info["bert_config"]["num_hidden_layers"] == 4
  assert distillation.Teacher(str(base / "5")).version_dir == str(base / "5")

  empty = tmp_path / "empty"
  os.makedirs(str(empty))
  for path, words in ((str(empty), ["no saved_model.pb"]), (str(tmp_path / "nowhere"),
                                                            ["not found"])):
    with pytest.raises(UsageError) as error:
      distillation.Teacher(path)
    message = one_line(error.value)
    assert message.startswith("--teacher_model %s" % path)
    for word in words:
      assert word in message
  with pytest.raises(UsageError) as error:
    kit.distill("nowhere", do_train=True, teacher_model=str(empty))
  assert "--teacher_model" in one_line(error.value)
  foreign = tmp_path / "foreign"
  shutil.copytree(kit.teacher_dir, str(foreign))
  shutil.rmtree(str(foreign / "assets.extra"))
  with pytest.raises(UsageError) as error:
    distillation.Teacher(str(foreign))
  assert "not exported by this toolkit" in one_line(error.value)


# -- a weak teacher and --init_layer_map -----------------------------------------------------

@pytest.fixture(scope="module")
def mapped_student(kit):
  """A 2-layer student of the untrained 4-layer teacher, its layers taken from teacher layers 0
  and 3, trained one step at a negligible learning rate."""
  run = kit.distill("mapped", bert_config_file=kit.mapped_config, teacher_model=kit.weak_export,
                    init_checkpoint=kit.weak_export, init_layer_map="0,3", do_train=True,
                    num_train_steps=1, learning_rate=1e-9, teacher_logits="cached")
  with captured() as out:
    run.run()
  return Trained(run.config.output_dir, out.getvalue())


def test_weak_teacher_warns_before_training(kit, mapped_student):
  log = mapped_student.log
  assert "WARNING: the teacher %s reaches only" % kit.weak_dir in log
  assert "!" * 78 in log
  assert log.index("WARNING: the teacher") < log.index("Training 1 steps")
  assert log.index("WARNING: the teacher") < log.index("step 1/1")


def test_init_layer_map_takes_the_mapped_teacher_layers(kit, mapped_student):
  teacher = tf.train.load_checkpoint(os.path.join(kit.weak_dir, "variables", "variables"))
  student = tf.train.load_checkpoint(tf.train.latest_checkpoint(mapped_student.output_dir))
  student_names = [n for n in student.get_variable_to_shape_map()
                   if n.startswith("bert/") or n.startswith("output_")]
  compared = 0
  for name in student_names:
    if "adam" in name.lower():
      continue
    source = name.replace("/layer_1/", "/layer_3/")
    np.testing.assert_allclose(student.get_tensor(name), teacher.get_tensor(source), atol=1e-5,
                               err_msg=name)
    compared += 1
  assert compared >= 30
  name = "bert/encoder/layer_1/attention/self/query/kernel"
  assert not np.allclose(student.get_tensor(name), teacher.get_tensor(name), atol=1e-3)
  assert "Initialised" in mapped_student.log


def test_bad_init_layer_map_is_a_clear_error(kit, tmp_path):
  common = dict(bert_config_file=kit.mapped_config, init_checkpoint=kit.weak_export,
                do_train=True)
  for layer_map, words in (("0,1,2", ["--init_layer_map", "expected 2"]),
                           ("0,x", ["--init_layer_map", "comma-separated"]),
                           ("-1,2", ["--init_layer_map", "non-negative"])):
    with pytest.raises(UsageError) as error:
      kit.distill("badmap", init_layer_map=layer_map, **common)
    for word in words:
      assert word in one_line(error.value), (word, str(error.value))
  with pytest.raises(UsageError) as error:
    kit.distill("badmap", init_layer_map="0,3", bert_config_file=kit.mapped_config,
                do_train=True)
  assert "needs --init_checkpoint" in one_line(error.value)

  narrow = write_json(str(tmp_path / "narrow.json"), tiny_config(2, 16))
  for config, layer_map, words in ((kit.mapped_config, "0,7", ["--init_layer_map", "layer 7",
                                                               "0-3"]),
                                   (narrow, "0,3", ["--init_checkpoint", "variable bert/",
                                                    "[32]", "[16]"])):
    run = kit.distill("badmap", init_layer_map=layer_map, **dict(common, bert_config_file=config))
    with tf.Graph().as_default(), captured():
      features = {name: tf1.placeholder(tf.int32, [None, None])
                  for name in ("input_ids", "input_mask", "segment_ids")}
      features["label_ids"] = tf1.placeholder(tf.int32, [None])
      with pytest.raises(UsageError) as error:
        run.model_fn()(features, None, ModeKeys.TRAIN, {})
    message = one_line(error.value)
    for word in words:
      assert word in message, (word, message)


# -- cached teacher logits -------------------------------------------------------------------

def read_teacher_logits(record_file):
  spec = {"teacher_logits": tf.io.FixedLenFeature([2], tf.float32)}
  return np.array([tf.io.parse_single_example(r, spec)["teacher_logits"].numpy()
                   for r in tf.data.TFRecordDataset(record_file)])


def test_cached_logits_are_reused_and_rebuilt_when_the_teacher_changes(kit, cached_student,
                                                                       tmp_path):
  record = os.path.join(cached_student.output_dir, "train" + TEACHER_RECORD_SUFFIX)
  assert "Wrote teacher logits for 256 train examples" in cached_student.log

  def stamp():
    st = os.stat(record)
    return st.st_ino, st.st_mtime_ns

  before, logits = stamp(), read_teacher_logits(record)
  assert logits.shape == (256, 2)
  run = kit.distill("cached", teacher_logits="cached", do_train=True)
  with captured() as out:
    run.train_features()
  assert "Reusing teacher logits %s" % record in out.getvalue()
  assert "Wrote teacher logits" not in out.getvalue()
  assert stamp() == before

  # The same teacher path with new weights (a re-export in place) rebuilds them.
  moving = str(tmp_path / "moving")
  shutil.copytree(kit.teacher_dir, moving)
  for teacher_dir, same_logits in ((moving, True), (kit.weak_dir, False)):
    if teacher_dir == kit.weak_dir:
      shutil.rmtree(moving)
      shutil.copytree(kit.weak_dir, moving)
    run = kit.distill("cached", teacher_logits="cached", do_train=True, teacher_model=moving)
    with captured() as out:
      _, info = run.train_features()
    assert "Wrote teacher logits for 256 train examples" in out.getvalue()
    assert info["fingerprint"]["extra"]["teacher"] == os.path.abspath(moving)
    assert stamp() != before
    before = stamp()
    assert np.allclose(read_teacher_logits(record), logits, atol=1e-5) == same_logits


def test_teacher_checked_on_train_split_without_dev_file(kit, tmp_path):
  data_dir = str(tmp_path / "data")
  os.makedirs(data_dir)
  shutil.copy(os.path.join(kit.data_dir, "train.csv"), data_dir)
  run = kit.distill("nodev", data_dir=data_dir, do_train=True)
  with captured() as out:
    record_file, info = run.train_features()
  assert "1.0000 accuracy on the train split" in out.getvalue(), out.getvalue()
  assert record_file.endswith("/train.tf_record") and info["num_examples"] == 256


def test_a_tempered_teacher_is_distilled_at_one_temperature(kit, tmp_path):
  """A teacher trained at T=4 serves logits z/4; the distiller scales them back to z, so its
  soft targets are softmax(z / --temperature), not softmax(z / 4 / --temperature)."""
  from bert.loaded_export import LoadedExport
  tempered_export = str(tmp_path / "tempered")
  checkpoint = tf.train.latest_checkpoint(os.path.join(kit.root, "teacher"))
  config = modeling.BertConfig.from_json_file(kit.teacher_config)
  version_dir = export.export_saved_model(tempered_export, checkpoint, config, LABELS,
                                          kit.vocab_file, True, MAX_SEQ_LENGTH, temperature=4.0)
  ids = np.array([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]], np.int32)
  feed = {"input_ids": ids, "input_mask": (ids > 0).astype(np.int32),
          "segment_ids": np.zeros_like(ids)}
  loaded = LoadedExport(version_dir)
  served = loaded.run(feed)["logits"]
  loaded.close()
  plain = distillation.Teacher(kit.teacher_dir)
  tempered = distillation.Teacher(version_dir)
  assert tempered.training_temperature == 4.0 and plain.training_temperature == 1.0
  with tf.Graph().as_default():
    inputs = {k: tf1.placeholder(tf.int32, [None, None]) for k in feed}
    teacher_logits = [t.logits(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
                      for t in (tempered, plain)]
    with tf1.Session() as session:
      raw, reference = session.run(teacher_logits, {inputs[k]: v for k, v in feed.items()})
  np.testing.assert_allclose(raw, served * 4.0, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(raw, reference, rtol=1e-5, atol=1e-5)  # the same weights, z itself
  assert tempered.fingerprint() != plain.fingerprint()


def test_kd_loss_mse_matches_numpy_with_transfer_examples():
  batch, num_labels = 6, 3
  student, teacher, labels = _random_logits(1, batch, num_labels)
  has_label = np.array([1, 0, 1, 1, 0, 0], np.int32)
  alpha = 0.3
  with tf.Graph().as_default():
    s_in = tf1.placeholder(tf.float32, [None, num_labels])
    loss, hard, soft = distillation.kd_loss(s_in, tf.constant(teacher), tf.constant(labels),
                                            5.0, alpha, has_label=tf.constant(has_label),
                                            soft_loss="mse")
    grad_s, = tf.gradients(tf.reduce_sum(loss), [s_in])
    with tf1.Session() as session:
      loss, hard, soft, grad_s = session.run([loss, hard, soft, grad_s], {s_in: student})
  soft_ref = np.mean((student - teacher) ** 2, axis=-1)  # no temperature
  hard_ref = -_log_softmax(student)[np.arange(batch), labels] * has_label
  np.testing.assert_allclose(soft, soft_ref, rtol=1e-5)
  np.testing.assert_allclose(hard, hard_ref, rtol=1e-5, atol=1e-6)
  weight = np.where(has_label == 1, alpha, 1.0)  # transfer examples: the soft term alone
  np.testing.assert_allclose(loss, (1 - alpha) * hard_ref + weight * soft_ref, rtol=1e-5)
  p = np.exp(_log_softmax(student))
  grad_ref = ((1 - alpha) * (p - np.eye(num_labels)[labels]) * has_label[:, None] +
              weight[:, None] * 2.0 / num_labels * (student - teacher))
  np.testing.assert_allclose(grad_s, grad_ref, rtol=1e-4, atol=1e-5)
