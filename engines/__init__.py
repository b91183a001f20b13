"""One folder per engine, each exporting ``ENGINE: EngineSpec`` (``engines.spec``); ``engines.registry`` finds them.

Deliberately empty: the ``trtllm-build`` job imports ``engines.trtllm`` in a container that has
only this folder, so importing the package must not discover or import anything else.
"""
