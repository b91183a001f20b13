"""What a run says about itself, computed inside every run: validity (was the client on time and unsaturated?),
saturation (did the server stop keeping up?), agreement (do the targets answer alike?).

Below the run core: ``summary`` and ``api`` import these; they import only records, metrics and the client's
own CPU samples (``record``, ``metrics``, ``cpu``), never ``api``, ``answers``, ``render`` or ``cli``.
"""
