"""The bundled locustfile: one user class for the profile's target kind, and the profile's stages.

``python -m loadgen.locust`` passes it to Locust; ``locust -f`` takes its path too.
"""

from loadgen.locust import LLMUser, ProfileShape


class RigUser(LLMUser):
    """Speaks whatever API the profile's target is (``--rig-target``)."""


class RigShape(ProfileShape):
    """The profile's warm-up and stages."""
