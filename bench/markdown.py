"""Markdown tables and cell formatting for the benchmark reports."""


def table(header, rows):
  """A markdown table.

  Args:
    header: column titles.
    rows: sequences of cells (any value, written with str); a row shorter than the header is
      padded with empty cells.
  Returns:
    List of lines: header, separator, one line per row.
  """
  width = len(header)
  lines = [_line(header), "|" + "---|" * width]
  for row in rows:
    row = list(row)
    lines.append(_line(row + [""] * (width - len(row))))
  return lines


def _line(cells):
  return "|" + "|".join(" %s " % cell if str(cell) else " " for cell in cells) + "|"


def clean(text, width=160):
  """One line of at most `width` characters (the end kept), safe inside a table cell."""
  return " ".join(str(text).split())[-width:].replace("|", "/")


def pct(value):
  """0.512 -> "51 %"; None -> "-"."""
  return "-" if value is None else "%.0f %%" % (100 * value)


def ratio_pct(value, reference):
  """value / reference as a percentage, "-" without a reference."""
  return pct(value / reference) if reference else "-"
