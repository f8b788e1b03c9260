"""``desk-sessions report``: one self-contained HTML page of a day, week, month or range,
written to a file and optionally mailed (see docs/report.md)."""
