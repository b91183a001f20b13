"""Arrival processes of open-loop stages: one module each, registered in ``loadgen.registry.ARRIVALS``.

A stage's ``arrival`` names one (``poisson``, ``constant``, ``gamma``); every process gives
spacings with mean 1/rate, so the rate means the same thing whichever is chosen.

May import: ``registry``, ``basemodel`` and the standard library; nothing of the run above them.
"""
