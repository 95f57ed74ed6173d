"""Runs in a subprocess of tests/test_distribute.py: mirrored training on two logical CPU devices
against one device (the CPU must be split before TensorFlow starts, so not in pytest's process).

python tests/distribute_helper.py mirrored ROOT: trains the same tiny model (dropout off) on one
device and on two replicas at the same global batch, and prints one JSON line with both runs'
per-step losses and the largest weight difference after the last step. `distill ROOT`: the same
for distillation from an online teacher; prints both runs' per-step soft losses.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # noqa: E402  (puts the repo root on sys.path)

from bert import distribute  # noqa: E402


def tiny_run(root, distribution, steps=6, batch_size=8, precision="fp32"):
  """Trains a 1-layer, 32-wide model `steps` steps; returns (losses, {variable: value})."""
  import tensorflow as tf
  from bert import classifier, classifier_data, modeling
  from bert.training import Trainer
  modeling.dropout = lambda x, rate: x  # dropout off, the classifier's fixed 0.1 included
  os.makedirs(root, exist_ok=True)
  vocab_file = conftest.write_vocab(os.path.join(root, "vocab.txt"))
  config = conftest.tiny_config(num_hidden_layers=1, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0)
  record_file = os.path.join(root, "train.tf_record")
  if not os.path.exists(record_file):
    conftest.write_feature_records(record_file, conftest.make_examples(
        conftest.review_lines(27, seed=5)), conftest.LABELS, vocab_file, conftest.MAX_SEQ_LENGTH)
  init_checkpoint = os.path.join(root, "init", "model.ckpt")
  if not os.path.exists(init_checkpoint + ".index"):  # the same initial weights for every run
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(1)  # and the same from one test session to the next
      ids = tf.compat.v1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(config, False, ids, ids, ids, len(conftest.LABELS))
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(session, init_checkpoint)
  model_fn = classifier.model_fn_builder(config, conftest.LABELS, learning_rate=1e-3,
                                         num_train_steps=steps, num_warmup_steps=2,
                                         precision=precision, init_checkpoint=init_checkpoint)
  output_dir = os.path.join(root, "model-%s" % distribution.name)
  trainer = Trainer(model_fn, output_dir, params={"seed": 3}, log_every_n_steps=1000,
                    distribution=distribution)
  input_fn = classifier_data.input_fn_builder(record_file, True, conftest.MAX_SEQ_LENGTH, seed=1,
                                              bucket_boundaries=[8, 16, conftest.MAX_SEQ_LENGTH])
  checkpoint = trainer.train(input_fn, steps, batch_size)
  weights = {name: tf.train.load_variable(checkpoint, name)
             for name, _ in tf.train.list_variables(checkpoint)}
  return trainer.train_losses, weights


def distill_soft_losses(root, distribution_name, steps=4):
  """Distils a 2-layer student from a frozen (random, confident) teacher with
  --teacher_logits=online; returns the per-step soft_loss values from its TensorBoard events."""
  import tensorflow as tf
  from absl import flags as absl_flags
  from bert import classifier, classifier_flags, distill_run, export, modeling, run_config
  modeling.dropout = lambda x, rate: x
  tf1 = tf.compat.v1
  data_dir = os.path.join(root, "data")
  os.makedirs(root, exist_ok=True)
  vocab_file = conftest.write_vocab(os.path.join(root, "vocab.txt"))
  config_file = conftest.write_config(os.path.join(root, "config.json"), num_hidden_layers=1,
                                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                      initializer_range=0.5)
  init = os.path.join(root, "init", "model.ckpt")
  teacher_dir = os.path.join(root, "teacher")
  if not os.path.isdir(teacher_dir):
    conftest.write_emotion_dataset(data_dir, num_train=40)
    config = modeling.BertConfig.from_json_file(config_file)
    with tf.Graph().as_default():
      tf1.set_random_seed(5)
      ids = tf1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(config, False, ids, ids, ids, len(conftest.LABELS))
      with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        checkpoint = tf1.train.Saver().save(session, init)
    export.export_saved_model(teacher_dir, checkpoint, config, conftest.LABELS, vocab_file, True,
                              conftest.MAX_SEQ_LENGTH)
  values = absl_flags.FlagValues()
  classifier_flags.define_distill_flags(values)
  output_dir = os.path.join(root, "student-" + distribution_name)
  values(["distill", "--task_name=emotion", "--data_dir=" + data_dir, "--vocab_file=" + vocab_file,
          "--bert_config_file=" + config_file, "--output_dir=" + output_dir,
          "--teacher_model=" + teacher_dir, "--init_checkpoint=" + init, "--do_train",
          "--num_train_steps=%d" % steps, "--train_batch_size=8", "--log_every_n_steps=1",
          "--max_seq_length=%d" % conftest.MAX_SEQ_LENGTH, "--learning_rate=1e-2",
          "--distribution=" + distribution_name, "--alpha=0.7", "--temperature=2",
          "--precision=fp32",  # exact comparison: not bf16 where --precision=auto would pick it
          "--num_devices=%d" % (2 if distribution_name == "mirrored" else 0)])
  distill_run.DistillRun(run_config.RunConfig.from_flags(values)).run()
  losses = {}
  for path in tf.io.gfile.glob(os.path.join(output_dir, "events.out.tfevents.*")):
    for event in tf1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "soft_loss":
          losses[event.step] = value.simple_value
  return [losses[step] for step in sorted(losses)]


def main():
  mode, root = sys.argv[1], sys.argv[2]
  precision = sys.argv[3] if len(sys.argv) > 3 else "fp32"
  if mode == "mirrored":
    mirrored = distribute.Distribution.create("mirrored", 2)
    conftest.use_exact_float32()
    one_losses, one = tiny_run(root, distribute.Distribution(), precision=precision)
    two_losses, two = tiny_run(root, mirrored, precision=precision)
    diff = max(float(abs(one[k] - two[k]).max()) for k in one)
    print(json.dumps({"one": one_losses, "two": two_losses, "max_weight_diff": diff,
                      "names": sorted(set(one) ^ set(two)), "replicas": mirrored.num_replicas}))

  elif mode == "distill":
    distribute.Distribution.create("mirrored", 2)
    conftest.use_exact_float32()
    print(json.dumps({"one": distill_soft_losses(root, "none"),
                      "two": distill_soft_losses(root, "mirrored")}))


if __name__ == "__main__":
  main()
