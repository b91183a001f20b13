"""Load shapes: one module per shape, registered in ``loadgen.registry.SHAPES``.

A shape is one stage's pydantic model, told apart by its ``type`` (a discriminated union
in ``loadgen.config``). The runner asks a shape only two things: how many requests to keep
in flight (closed loop) or when each request is due (open loop).

May import: ``registry``, ``basemodel``, ``tokens`` and ``clients.base`` (the request spec); nothing above.
"""
