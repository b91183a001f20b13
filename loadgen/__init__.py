"""The rig's load generator: profiles → schedules → clients → records → metrics → sinks."""

__version__ = "0.1.0"
