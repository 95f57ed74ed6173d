"""The main of both entry points: flags checked before TensorFlow loads, then one run.

run_classifier.py and run_classifier_distill.py differ only in their flags and in the run they
make (ClassifierRun or DistillRun); this is the rest.
"""

import importlib
import os

from absl import app, flags

from bert import hardware, quiet, run_config
from bert.errors import run_main


def run(run_class):
  """Parses the command line into the flags the entry point defined and runs bert.<run_class>.

  run_class: "module.Class" of bert/, a class taking a RunConfig with a run() method; its module
  (which imports TensorFlow) is imported only once the flags have been checked.
  """
  flag_values = flags.FLAGS

  def main(argv):
    del argv
    quiet.configure(flag_values.verbose)  # before TensorFlow loads: its notices are filtered
    if flag_values.xla_elementwise != "off" and not flag_values.use_xla:
      # Read once per process, at TensorFlow's first device listing (in RunConfig.derive).
      os.environ["TF_XLA_FLAGS"] = hardware.with_elementwise_jit_flags(
          os.environ.get("TF_XLA_FLAGS"))
    config = run_config.RunConfig.from_flags(flag_values)  # a bad flag fails before it loads
    module_name, class_name = run_class.rsplit(".", 1)
    getattr(importlib.import_module("bert." + module_name), class_name)(config).run()

  app.run(lambda argv: run_main(main, argv,
                                verbose=flag_values.verbose or flag_values.verbosity >= 1))
