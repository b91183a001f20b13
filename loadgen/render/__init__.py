"""Renderers of a run's typed summary: the one table (console, text, markdown, HTML), CSV, report.html.

Each loops over the metric registry (``loadgen.metrics``), so a new metric needs no renderer change. Part of
the run core (``api`` writes a run's files with them): never imports ``api``, ``answers`` or ``cli``; the
answers' renderers live beside them in ``loadgen/answers/``.
"""
