"""The settings of one run, checked once, with every derived value fixed before a graph is built.

    config = RunConfig.from_flags(FLAGS)                  # the entry points
    config = RunConfig.create(task_name="emotion", ...)   # Python: the flags' names and defaults
    config = config.for_train_examples(num_examples)      # once the training features exist

Settings have the flags' names, defaults and meaning; giving a distillation setting (teacher_model,
alpha, ...) makes a distillation run's config, whose settings sit in `distill` (DistillSettings).
Derived values (label list, compute precision, layer map, per-worker work_dir, train and warmup
steps) are computed by create() and for_train_examples(), never patched later.

Importing this module needs no TensorFlow, nor do the flag checks (a bad flag fails at once);
create() loads the task's processor and lists the GPUs, which imports it.
"""

import dataclasses
import math
import os
import types
from typing import Optional, Tuple

from bert import bert_config as bert_config_lib
from bert import classifier_flags, distribute, hardware, serving_cpu, tokenization, vocab
from bert.errors import UsageError

DERIVED = {"derived": True}


def derived(default=None, compare=True):
  """A field create() or for_train_examples() computes (not a setting)."""
  return dataclasses.field(default=default, compare=compare, metadata=DERIVED)


@dataclasses.dataclass(frozen=True)
class DistillSettings(object):
  """run_classifier_distill.py's own settings: teachers, loss, matches, transfer set."""

  teacher_model: Optional[str] = None  # PATH[:WEIGHT],... (see teachers)
  alpha: float = 0.5
  teacher_logits: str = "online"
  teacher_average: str = "probs"
  soft_loss: str = "ce"
  distill_config: Optional[str] = None
  distill_preset: str = "none"
  distill_layer_map: Optional[str] = None
  distill_stage: str = "full"
  match_teacher: Optional[str] = None
  transfer_file: Optional[str] = None
  transfer_format: str = "text"
  augment_copies: int = 0
  augment_seed: int = 1
  augment_mask_prob: float = 0.1
  augment_replace_prob: float = 0.1
  augment_ngram_prob: float = 0.25
  augment_max_ngram: int = 5
  augment_min_length: int = 0
  augment_mlm_checkpoint: Optional[str] = None
  augment_mlm_top_k: int = 15

  @property
  def teachers(self):
    """[(export path, weight)] of teacher_model, in order."""
    from bert import distill_config  # pylint: disable=import-outside-toplevel
    return distill_config.parse_teacher_models(self.teacher_model)


DISTILL_NAMES = tuple(f.name for f in dataclasses.fields(DistillSettings))


@dataclasses.dataclass(frozen=True)
class RunConfig(object):
  """Every setting of a run (run_classifier.py's flags) and the values derived from them."""

  task_name: Optional[str] = None
  data_dir: Optional[str] = None
  vocab_file: Optional[str] = None
  bert_config_file: Optional[str] = None
  output_dir: Optional[str] = None
  init_checkpoint: Optional[str] = None
  init_layer_map: Optional[str] = None
  do_lower_case: bool = True
  max_seq_length: int = 128
  do_train: bool = False
  do_eval: bool = False
  do_predict: bool = False
  do_export: bool = False
  export_dir: Optional[str] = None
  export_row_blocks: bool = True
  serving_l2_kib: int = 0  # 0: this machine's L2 cache per core
  serving_cores: int = 0  # 0: this machine's cores
  train_batch_size: int = 32  # the global batch, split over the replicas
  eval_batch_size: int = 8
  predict_batch_size: int = 8
  learning_rate: float = 5e-5
  num_train_epochs: float = 3.0
  num_train_steps: int = 0  # 0: from num_train_epochs (train_steps is the count used)
  adam_bias_correction: bool = True
  warmup_proportion: float = 0.1
  save_checkpoints_steps: int = 1000
  keep_checkpoint_max: int = 5
  log_every_n_steps: int = 50
  use_tpu: bool = False  # accepted for compatibility, refused when True
  do_distill: bool = False
  temperature: Optional[float] = None  # None: 2.0 in a distillation config, else 1.0
  padding: str = "dynamic"
  precision: str = "auto"  # as asked; compute_precision is what is used
  use_xla: bool = False
  xla_elementwise: str = "auto"  # as asked; elementwise_jit is what is used
  distribution: str = "none"
  num_devices: int = 0
  seed: int = 12345
  labels: Optional[str] = None
  text_column: str = "0"
  text_b_column: str = ""
  label_column: str = "1"
  csv_delimiter: str = ""
  csv_header: bool = False
  distill: Optional[DistillSettings] = None  # set: a distillation run

  # -- derived -----------------------------------------------------------------------------------
  bert_config: Optional[bert_config_lib.BertConfig] = derived(compare=False)  # bert_config_file's
  label_list: Tuple[str, ...] = derived(())
  compute_precision: str = derived("fp32")  # fp32, fp16 or bf16
  precision_reason: str = derived("")
  elementwise_jit: bool = derived(False)
  elementwise_jit_reason: str = derived("")
  layer_map: Optional[Tuple[int, ...]] = derived()  # init_layer_map parsed
  work_dir: Optional[str] = derived()  # output_dir, or output_dir/worker-<i> for a non-chief
  num_train_examples: Optional[int] = derived()  # set by for_train_examples
  train_steps: Optional[int] = derived()  # None until known (eval/predict build no optimizer)
  warmup_steps: int = derived(0)

  @classmethod
  def from_flags(cls, flag_values):
    """The config of an entry point's parsed absl flags (its distillation flags too, if defined)."""
    names = SETTING_NAMES + (DISTILL_NAMES if "teacher_model" in flag_values else ())
    return cls.create(**{name: flag_values[name].value for name in names if name in flag_values})

  @classmethod
  def create(cls, **values):
    """A checked config with its derived values, from settings named as the flags.

    Raises one-line UsageErrors naming the flag, as the entry points report them.
    """
    distill = {name: values.pop(name) for name in DISTILL_NAMES if name in values}
    config = cls(**values, distill=DistillSettings(**distill) if distill else None)
    if config.temperature is None:
      config = dataclasses.replace(config, temperature=2.0 if distill else 1.0)
    config.check()
    return config.derive()

  def settings(self):
    """{flag name: value} of every setting (distillation's included), not the derived values."""
    values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
              if f.name in SETTING_NAMES}
    if self.distill is not None:
      values.update(dataclasses.asdict(self.distill))
    return values

  def check(self):
    """The checks that need only the settings' values (no file read but --distill_config)."""
    flat = types.SimpleNamespace(**self.settings())
    if self.distill is None:
      classifier_flags.check_flags(flat)
    else:
      classifier_flags.check_distill_flags(flat)

  def derive(self):
    """This config with its derived values: reads bert_config, the vocab and the labels."""
    model_config = bert_config_lib.BertConfig.from_json_file(self.bert_config_file)
    if self.max_seq_length > model_config.max_position_embeddings:
      raise UsageError("--max_seq_length %d: larger than max_position_embeddings %d of %s" %
                       (self.max_seq_length, model_config.max_position_embeddings,
                        self.bert_config_file))
    vocab.check_vocab(self.vocab_file, model_config)
    tokenization.validate_case_matches_checkpoint(self.do_lower_case, self.init_checkpoint or "")
    processor = self.processor(labels=self.labels.split(",") if self.labels else None)
    if self.data_dir:
      processor.prepare(self.data_dir)
    gpus = (hardware.visible_gpu_capabilities()
            if "auto" in (self.precision, self.xla_elementwise) else ())
    precision, reason = hardware.choose_precision(self.precision, hardware.cpu_flags(), gpus)
    jit, jit_reason = hardware.choose_elementwise_jit(self.xla_elementwise, precision,
                                                      self.padding, gpus, self.use_xla)
    from bert import checkpoint_init  # pylint: disable=import-outside-toplevel
    layer_map = checkpoint_init.parse_layer_map(self.init_layer_map,
                                                model_config.num_hidden_layers)
    if layer_map and not self.init_checkpoint:
      raise UsageError("--init_layer_map: needs --init_checkpoint to take the layers from")
    config = dataclasses.replace(
        self, bert_config=model_config, label_list=tuple(processor.get_labels()),
        compute_precision=precision, precision_reason=reason,
        elementwise_jit=jit, elementwise_jit_reason=jit_reason,
        layer_map=tuple(layer_map) if layer_map else None, work_dir=self._work_dir())
    return config.with_train_steps(self.num_train_steps) if self.num_train_steps > 0 else config

  def _work_dir(self):
    """A non-chief worker keeps its features, lock and final weights apart; it reads the
    checkpoints of output_dir (shared by all workers) and writes nothing there."""
    if self.distribution != "multi_worker":
      return self.output_dir
    _, index, is_chief = distribute.parse_tf_config(os.environ["TF_CONFIG"])
    return self.output_dir if is_chief else os.path.join(self.output_dir, "worker-%d" % index)

  def with_train_steps(self, steps):
    return dataclasses.replace(self, train_steps=steps,
                               warmup_steps=int(steps * self.warmup_proportion))

  def for_train_examples(self, num_examples):
    """The final config of a training run: train steps from the training set's size."""
    steps = self.num_train_steps if self.num_train_steps > 0 else max(1, int(math.ceil(
        num_examples * self.num_train_epochs / self.train_batch_size)))
    return dataclasses.replace(self, num_train_examples=num_examples).with_train_steps(steps)

  def processor(self, labels=None):
    """The task's DataProcessor (a csv task's labels: the given ones, else label_list)."""
    from bert import classifier_data  # pylint: disable=import-outside-toplevel
    return classifier_data.get_processor(
        self.task_name, text_column=self.text_column, text_b_column=self.text_b_column,
        label_column=self.label_column, delimiter=self.csv_delimiter, has_header=self.csv_header,
        labels=labels or list(self.label_list) or None)

  @property
  def export_row_blocks_for(self):
    """modeling.BertModel's row_blocks for the export: False or the serving CPU (this machine's
    L2 and cores where --serving_l2_kib, --serving_cores do not name others)."""
    if not self.export_row_blocks:
      return False
    return serving_cpu.ServingCpu.this_machine(self.serving_l2_kib * 1024 or None,
                                               self.serving_cores or None)

  @property
  def train_temperature(self):
    """Temperature of the hard-label loss and of the export: T for a teacher trained with
    --do_distill, else 1 (a student's hard-label loss, eval and export are at T=1)."""
    return self.temperature if self.do_distill else 1.0

  def model_signature(self):
    """What must match for a checkpoint in output_dir to be resumed or evaluated.

    An output_dir of an older version recorded only bert_config and labels: the keys it lacks are
    unknown there, accepted and recorded (Trainer.check_output_dir).
    """
    return {"bert_config": self.bert_config.architecture(), "labels": list(self.label_list),
            "vocab_sha256": vocab.vocab_fingerprint(self.vocab_file),
            "do_lower_case": bool(self.do_lower_case), "max_seq_length": int(self.max_seq_length)}


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig)
                      if not f.metadata.get("derived") and f.name != "distill")
