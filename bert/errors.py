"""One-line errors for bad input, and the entry points' main wrapper that prints them."""

import sys
import traceback


class UsageError(ValueError):
  """Bad input from the user: a flag, a file or a line. Its message names which and what was expected."""


class TrainingError(RuntimeError):
  """A run that cannot go on (non-finite loss, unwritable checkpoint); what is on disk is kept."""


def run_main(main, argv, verbose=False):
  """Runs main(argv); a UsageError or ValueError exits 1 with its message on one line.

  A traceback is printed only when `verbose` (the entry points pass --verbosity ≥ 1).
  """
  try:
    return main(argv)
  except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr)
    sys.exit(130)
  except (UsageError, TrainingError, ValueError, OSError) as e:
    if verbose:
      traceback.print_exc()
    message = " ".join(str(e).split()) or type(e).__name__
    print("error: %s" % message, file=sys.stderr)
    sys.exit(1)
