"""Fine-tunes BERT for classification (the teacher), evaluates, predicts and exports it.

Google's run_classifier.py flags, on TensorFlow 2.x graph mode with our own trainer, plus
--do_distill/--temperature (teacher trained on temperature-scaled logits) and
--do_export/--export_dir (a SavedModel for tensorflow_model_server).
"""

import os
import sys

if __package__ in (None, ""):  # run as `python bert/run_classifier.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert import classifier_flags, entry_point

classifier_flags.define_flags()  # on import too: both entry points can share one process

if __name__ == "__main__":
  entry_point.run("classifier_run.ClassifierRun")
