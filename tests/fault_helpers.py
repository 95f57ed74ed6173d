"""Runs an entry point with a fault hook, for tests/test_reliability.py.

    python tests/fault_helpers.py HOOK SCRIPT [FLAGS...]

HOOK is one of:
  export_pause  export.export_saved_model stops just before renaming its finished temporary
                directory into a numeric version (prints "fault_helpers: export paused" and
                sleeps), so the test can SIGKILL the exporter at the worst moment: everything
                written, nothing renamed.
  none          no fault: the entry point as it is.

The hook is a monkeypatch in this wrapper process only; bert/ holds no test hooks.
"""

import os
import runpy
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAUSED = "fault_helpers: export paused"


def _install(hook):
  if hook == "none":
    return
  if hook == "export_pause":
    from bert import export
    rename = export._rename_into_place

    def paused_rename(export_dir, temp_dir):
      print("%s in %s" % (PAUSED, temp_dir), flush=True)
      time.sleep(600)
      return rename(export_dir, temp_dir)

    export._rename_into_place = paused_rename
    return
  sys.exit("fault_helpers: unknown hook %r" % hook)


def main():
  hook, script = sys.argv[1], sys.argv[2]
  sys.path.insert(0, REPO_ROOT)
  _install(hook)
  sys.argv = [script] + sys.argv[3:]
  runpy.run_path(os.path.join(REPO_ROOT, script), run_name="__main__")


if __name__ == "__main__":
  main()
