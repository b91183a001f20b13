"""Where records and samples go as a run goes: ``records.jsonl`` (each request as it ends) and the
[time, value] sample files (loop lag, CPU).

May import: ``record`` and the standard library; nothing of the run above them.
"""
