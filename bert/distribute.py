"""Training on several devices and several machines with tf.distribute (graph mode, TF1 API).

`--distribution=none` trains on one device. `mirrored` replicates the model over the devices of
this machine (`--num_devices`: the first N GPUs; on a machine without GPUs, N logical CPU
devices, which is how the tests run it). `multi_worker` replicates it over the machines named in
TF_CONFIG (one process per machine, each on all of its GPUs, or its CPU) with collective
all-reduce. Either way the model_fn runs once per replica on that replica's slice of each global
batch of `--train_batch_size` examples, the gradients are summed over replicas (all-reduce) and
applied once per variable copy (optimization.create_optimizer), so a step equals the one-device
step on the whole global batch.

The flag checks here need no TensorFlow (they run before it loads); `Distribution.create` must
run before TensorFlow initialises its devices (logical CPU devices cannot be added later).
"""

import json
import os

from bert.errors import UsageError

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


def parse_tf_config(text):
  """TF_CONFIG's JSON → (worker addresses, this task's index, is_chief).

  Accepted: {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}} (worker 0 is
  the chief), or with a "chief": [address] job and task type "chief" (then the chief is that task
  and the workers follow it).
  """
  try:
    config = json.loads(text)
    cluster, task = config["cluster"], config["task"]
    kind, index = task["type"], int(task.get("index", 0))
  except (ValueError, KeyError, TypeError) as e:
    raise UsageError("TF_CONFIG: expected {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                     "\"task\": {\"type\": \"worker\", \"index\": i}}, got %r (%s)" %
                     (text[:200], e))
  chief = list(cluster.get("chief") or [])
  workers = list(cluster.get("worker") or [])
  if kind not in ("worker", "chief") or not workers + chief:
    raise UsageError("TF_CONFIG: task type %r (expected worker or chief) in a cluster of %d "
                     "workers" % (kind, len(workers + chief)))
  jobs = {"worker": workers, "chief": chief}
  if not 0 <= index < len(jobs[kind]):
    raise UsageError("TF_CONFIG: task index %d out of range: the cluster has %d %s tasks" %
                     (index, len(jobs[kind]), kind))
  is_chief = kind == "chief" or (not chief and index == 0)
  return workers + chief, index, is_chief


def check_flags(fv, environ=None):
  """--distribution, --num_devices and TF_CONFIG against each other (no TensorFlow)."""
  environ = os.environ if environ is None else environ
  if fv.num_devices < 0:
    raise UsageError("--num_devices: must be >= 0 (0: every GPU, or one CPU device), got %d" %
                     fv.num_devices)
  if fv.distribution != "mirrored" and fv.num_devices:
    raise UsageError("--num_devices: applies to --distribution=mirrored only (multi_worker uses "
                     "every GPU of each machine)")
  if fv.distribution == "multi_worker":
    if not environ.get("TF_CONFIG"):
      raise UsageError("--distribution=multi_worker: needs the TF_CONFIG environment variable "
                       "(the cluster's workers and this one's index; see README)")
    parse_tf_config(environ["TF_CONFIG"])


class Distribution(object):
  """The strategy of a run and what the trainer needs to know about it.

  Attributes:
    name: "none", "mirrored" or "multi_worker".
    strategy: a tf.compat.v1.distribute strategy, or None (one device).
    num_replicas: replicas in sync over all machines (1 without a strategy).
    is_chief: whether this process writes checkpoints, summaries, eval results and exports.
    worker_index: this process's index in TF_CONFIG's cluster (0 without one).
    target: the session target ("" in-process; the local server's grpc address for multi_worker).
  """

  def __init__(self, name="none", strategy=None, num_replicas=1, is_chief=True, worker_index=0,
               target="", num_workers=1):
    self.name = name
    self.strategy = strategy
    self.num_replicas = num_replicas
    self.is_chief = is_chief
    self.worker_index = worker_index
    self.target = target
    self.num_workers = num_workers
    self.cpu_devices = 0  # logical CPU devices of mirrored on a machine without GPUs

  @classmethod
  def create(cls, name, num_devices=0, environ=None):
    """Builds the strategy (and for multi_worker starts this worker's server).

    Call before TensorFlow initialises its devices: mirrored on a CPU-only machine adds
    num_devices logical CPU devices.
    """
    if name == "none":
      return cls()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf1 = tf.compat.v1
    if name == "mirrored":
      devices = mirrored_devices(num_devices)
      strategy = tf1.distribute.MirroredStrategy(devices)
      distribution = cls(name, strategy, strategy.num_replicas_in_sync)
      distribution.cpu_devices = sum(device.startswith("/cpu") for device in devices)
      return distribution
    environ = os.environ if environ is None else environ
    addresses, index, is_chief = parse_tf_config(environ["TF_CONFIG"])
    # With eager execution on, the strategy starts an eager server on this worker's port, which
    # a graph-mode session cannot use (it blocks); graph mode is what Estimator ran it in.
    tf1.disable_eager_execution()
    strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    # In graph mode the strategy does not start the worker's server: the session connects to it.
    config = strategy.update_config_proto(tf1.ConfigProto(allow_soft_placement=True))
    server = tf.distribute.Server(resolver.cluster_spec(), resolver.task_type, resolver.task_id,
                                  config=config, start=True)
    distribution = cls(name, strategy, strategy.num_replicas_in_sync, is_chief, index,
                       server.target, len(addresses))
    distribution.server = server  # kept alive for the life of the process
    return distribution

  def session_config(self, config):
    """The trainer's ConfigProto, completed for the strategy (collective ops, cluster)."""
    if self.strategy is None:
      return config
    config = self.strategy.update_config_proto(config)
    if self.cpu_devices > 1:
      # A session given a ConfigProto sees only the devices it names: the logical CPUs too.
      config.device_count["CPU"] = self.cpu_devices
    # Each replica's step blocks inter-op threads (its input shard, the all-reduce): with the
    # default pool (one thread per core) two replicas on a 2-core machine wait on each other.
    config.inter_op_parallelism_threads = max(config.inter_op_parallelism_threads,
                                              8 * self.num_replicas)
    return config

  def describe(self, global_batch):
    """One line for the log: replicas, workers and how the global batch is split."""
    if self.strategy is None:
      return "Distribution none: one device, batch %d" % global_batch
    where = ("%d devices of this machine" % self.num_replicas if self.name == "mirrored" else
             "%d workers (this is worker %d%s)" % (self.num_workers, self.worker_index,
                                                   ", the chief" if self.is_chief else ""))
    return ("Distribution %s: %d replicas over %s; each global batch of %d is split into %d "
            "slices of %d" % (self.name, self.num_replicas, where, global_batch, self.num_replicas,
                              global_batch // self.num_replicas))


def mirrored_devices(num_devices):
  """The device names for MirroredStrategy: the first num_devices GPUs (0: all), or without a GPU
  num_devices logical CPU devices (0 or 1: the CPU alone)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    if num_devices > len(gpus):
      raise UsageError("--num_devices %d: this machine has %d GPUs" % (num_devices, len(gpus)))
    return ["/gpu:%d" % i for i in range(num_devices or len(gpus))]
  count = max(num_devices, 1)
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu) or [None]
  if count > 1 and len(current) != count:
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as e:
      raise UsageError("--num_devices %d: cannot split the CPU into logical devices once "
                       "TensorFlow has started (%s)" % (count, str(e).splitlines()[0]))
  return ["/cpu:%d" % i for i in range(count)]


def global_mean(per_example):
  """This replica's share of the mean over the global batch: sum(per_example) / global count.

  Summed over replicas it is the mean over all their examples, whatever their slices' sizes
  (the last batch of an epoch may leave a replica fewer examples, or none). Without a strategy
  it is tf.reduce_mean.

  Args:
    per_example: float32 [batch_size] (this replica's slice).
  Returns:
    A float32 scalar.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return tf.reduce_mean(per_example)
  count = tf.cast(tf.shape(per_example)[0], tf.float32)
  total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(count))
  return tf.reduce_sum(per_example) / tf.maximum(total, 1.0)


def once(fn):
  """Runs fn() once for all replicas, in cross-replica context (where a mirrored variable's name
  is its own, not a replica's copy's), and returns its result to every replica. Every replica
  must call it (a merge_call). Without a strategy it is fn()."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  context = tf.distribute.get_replica_context()
  if context is None or not tf.distribute.has_strategy():
    return fn()
  return context.merge_call(lambda unused_strategy: fn())
