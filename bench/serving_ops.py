"""Where small-batch serving time goes: the nodes TensorFlow runs for one request, what
freezing the weights into constants saves, and what the inference graph's op forms save.

  python bench/serving_ops.py [--rounds 20] [--shapes 1x32,8x128] [--serving_l2_kib 2048]

Not a test. For the teacher (model/bert_config.json) and the student
(model/bert_config_student.json), randomly initialised (time only), the classifier's forward
pass at each batch × sequence shape in four forms, timed interleaved in rounds on the same ids:

  variables  the graph as the export serves it: weights read from resource variables, row
             blocks built for this machine's L2 per core (or --serving_l2_kib);
  frozen     the same graph with the weights folded into constants
             (graph_util.convert_variables_to_constants), as an inference-only export could be;
  training_forms  the same weights through the training graph's op forms with dropout off
             (tf.transpose for the heads, a one-hot einsum for token types, the layer norm of
             tf.nn.batch_normalization: what exports served before modeling.swap_seq_and_heads,
             the inference gather and the inference layer norm);
  one_block  the inference graph with each layer's token-wise part in one row block
             (BertModel's row_blocks=False: what exports served before the row split).

Printed per model: the node count of the graph grappler hands the executor (partition graphs,
after its rewrites: which ops it fused), its most common op types, the largest difference of the
logits between the two forms, and per shape the median ms of each form and the median of the
per-round ratios against variables (variables / frozen, training_forms / variables,
one_block / variables: > 1, the second is faster).
"""

import argparse
import collections
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bert import quiet  # noqa: E402

quiet.configure()  # before TensorFlow: its C++ start-up notices

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.collapse_bench import cpu_flags  # noqa: E402
from bert import classifier, modeling, serving_cpu  # noqa: E402
from bert.loaded_export import serving_session_config  # noqa: E402

tf1 = tf.compat.v1
MODELS = (("teacher", "model/bert_config.json"), ("student", "model/bert_config_student.json"))


def reused_logits(config, is_training, ids, row_blocks=True):
  """The classifier's logits [batch, 2] from the variables already built, through another
  BertModel on them (is_training: the training graph's op forms)."""
  with tf1.variable_scope("", reuse=True):
    model = modeling.BertModel(config, is_training, ids, tf.ones_like(ids), tf.zeros_like(ids),
                               scope="bert", row_blocks=row_blocks)
    weights = tf1.get_variable("output_weights")
    bias = tf1.get_variable("output_bias")
  return tf.nn.bias_add(tf.matmul(model.get_pooled_output(), weights, transpose_b=True), bias)


def training_forms_logits(config, ids):
  """Logits through the training graph's op forms (is_training=True) with dropout off."""
  quiet = modeling.BertConfig.from_dict(dict(config.to_dict(), hidden_dropout_prob=0.0,
                                             attention_probs_dropout_prob=0.0))
  return reused_logits(quiet, True, ids)


def give_biases_values(session, stddev=0.02):
  """Small random values for the biases and layer-norm betas, which initialise to zeros: a
  trained model's are not zero, and in the frozen form grappler would drop an add of zeros,
  and with it the matmul + bias (+ GELU) fusion that a trained model keeps."""
  rng = np.random.RandomState(2)
  for variable in tf1.global_variables():
    if variable.op.name.rsplit("/", 1)[-1] in ("bias", "beta", "output_bias"):
      variable.load(rng.normal(0.0, stddev, variable.shape.as_list()).astype(np.float32),
                    session)


def build(config, threads, cpu):
  """{form: (session, ids placeholder, logits)} of the variables, frozen, training and
  one-block forms; cpu: the serving CPU the export is built for (serving_cpu.ServingCpu)."""
  # The session config serve.sh gives the server for this export.
  session_config = serving_session_config(
      {"serving_intra_op_threads": cpu.intra_op_threads(config)}, threads)
  with tf.Graph().as_default() as graph:
    tf1.set_random_seed(1)
    ids = tf1.placeholder(tf.int32, [None, None], name="ids")
    logits, _ = classifier.classifier_logits(config, False, ids, tf.ones_like(ids),
                                             tf.zeros_like(ids), 2, row_blocks=cpu)
    logits = tf.identity(logits, name="logits")
    training_logits = training_forms_logits(config, ids)
    one_block = reused_logits(config, False, ids, row_blocks=False)
    session = tf1.Session(config=session_config)
    session.run(tf1.global_variables_initializer())
    give_biases_values(session)
    frozen_def = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(),
                                                               ["logits"])
  forms = {"variables": (session, ids, logits), "training_forms": (session, ids, training_logits),
           "one_block": (session, ids, one_block)}
  with tf.Graph().as_default() as frozen_graph:
    tf1.import_graph_def(frozen_def, name="")
    forms["frozen"] = (tf1.Session(config=session_config),
                       frozen_graph.get_tensor_by_name("ids:0"),
                       frozen_graph.get_tensor_by_name("logits:0"))
  return forms


def executed_ops(session, ids, logits, feed):
  """Counter of the op types in the graph the executor runs (after grappler's rewrites)."""
  metadata = tf1.RunMetadata()
  session.run(logits, {ids: feed}, options=tf1.RunOptions(output_partition_graphs=True),
              run_metadata=metadata)
  return collections.Counter(node.op for graph in metadata.partition_graphs for node in graph.node)


def time_forms(forms, feed, rounds, requests=30):
  """{form: [median seconds of each round]}; forms alternate their order round by round."""
  calls = {name: session.make_callable(logits, [ids])
           for name, (session, ids, logits) in forms.items()}
  times = collections.defaultdict(list)
  names = sorted(calls)
  for round_index in range(rounds):
    for name in names[round_index % len(names):] + names[:round_index % len(names)]:
      call = calls[name]
      for _ in range(3):
        call(feed)
      samples = []
      for _ in range(requests):
        started = time.perf_counter()
        call(feed)
        samples.append(time.perf_counter() - started)
      times[name].append(statistics.median(samples))
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=20)
  parser.add_argument("--shapes", default="1x32,1x128,8x128")
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--serving_l2_kib", type=int, default=0,
                      help="build the exports for this L2 per core (0: this machine's)")
  parser.add_argument("--serving_cores", type=int, default=0,
                      help="build the exports for this many cores (0: this machine's)")
  args = parser.parse_args()
  cpu = serving_cpu.ServingCpu.this_machine(args.serving_l2_kib * 1024 or None,
                                            args.serving_cores or None)
  configs = {model: modeling.BertConfig.from_json_file(os.path.join(ROOT, config_file))
             for model, config_file in MODELS}
  intra = {cpu.intra_op_threads(config) for config in configs.values()}
  if len(intra) > 1:  # TensorFlow's intra-op pool is one per process
    sys.exit("the models ask for different intra-op threads; time them one per run")
  shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
  print("# serving ops: TensorFlow %s, %d threads (intra-op: %s); CPU flags: %s; L2 per core "
        "%s KiB; exports built for %s; load average %.2f" % (
            tf.__version__, args.threads, intra.pop() or args.threads, cpu_flags(),
            (serving_cpu.l2_cache_bytes() or 0) // 1024, cpu.to_json(), os.getloadavg()[0]))
  rng = np.random.RandomState(0)
  for model, config_file in MODELS:
    forms = build(configs[model], args.threads, cpu)
    feed = rng.randint(5, 100, size=shapes[0]).astype(np.int32)
    outputs = {name: session.run(logits, {ids: feed})
               for name, (session, ids, logits) in forms.items()}
    print("\n## %s (%s)" % (model, config_file))
    for name, form in sorted(forms.items()):
      ops = executed_ops(*form, feed)
      print("%s: %d nodes; %s" % (name, sum(ops.values()), ", ".join(
          "%s %d" % item for item in ops.most_common(12))))
    for name in ("frozen", "training_forms", "one_block"):
      print("largest |logits difference|, variables vs %s: %.2g" % (
          name, np.abs(outputs["variables"] - outputs[name]).max()))
    for batch, length in shapes:
      feed = rng.randint(5, 100, size=[batch, length]).astype(np.int32)
      times = time_forms(forms, feed, args.rounds)

      def ratio(slow, fast):
        return statistics.median(a / b for a, b in zip(times[slow], times[fast]))

      names = ("variables", "frozen", "training_forms", "one_block")
      print("batch %d × %d: %s; variables / frozen %.3f×, training_forms / variables %.3f×, "
            "one_block / variables %.3f×" % (
                batch, length, ", ".join("%s %.3f ms" % (name, 1000 * statistics.median(
                    times[name])) for name in names),
                ratio("variables", "frozen"), ratio("training_forms", "variables"),
                ratio("one_block", "variables")))


if __name__ == "__main__":
  main()
