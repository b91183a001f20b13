"""Answers built on runs, never inside them: validity, saturation, capacity search, comparison.

Each module takes finished runs (``RunResult``s, records) or drives ``loadgen.api.run``; none
changes how a run measures.
"""
