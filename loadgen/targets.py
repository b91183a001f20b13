"""From a profile's targets to what each client is given: options, headers, the API key, TLS.

Why apart from ``api``: the same resolution serves the run (one client per target) and the checks
before it. Every target is resolved and its client built once *before* the output folder, the
manifest or records.jsonl exist, so a bad URL, an unset key variable or an unreadable CA file is a
clear error that leaves nothing behind (a rerun with the same ``--out`` is not refused).
"""

from __future__ import annotations

from loadgen.clients import ClientOptions, make_client
from loadgen.config import Profile, TargetConfig
from loadgen.headers import api_key_header, merged, secrets_of


def target_headers(profile: Profile, target: TargetConfig) -> tuple[tuple[str, str], ...]:
    """``request.headers``, then the target's ``headers``, then its API key (the target's
    ``api_key_env`` over ``request.api_key_env``) as ``Authorization: Bearer``. ValueError when the
    key's variable is unset."""
    layers = [profile.request.headers, target.headers]
    variable = target.api_key_env or profile.request.api_key_env
    if variable:
        layers.append(dict([api_key_header(variable)]))
    return tuple(merged(*layers).items())


def client_options(profile: Profile, target: TargetConfig) -> ClientOptions:
    req = profile.request
    return ClientOptions(model=profile.model_for(target), timeout_s=req.timeout_s,
                         stall_timeout_s=req.stall_timeout_s, connect_timeout_s=req.connect_timeout_s,
                         temperature=req.temperature,
                         ignore_eos=req.ignore_eos, extra_body=req.extra_body,
                         headers=target_headers(profile, target),
                         ca_cert=str(req.ca_cert) if req.ca_cert else None, insecure=req.insecure)


def check_targets(profile: Profile) -> set[str]:
    """Resolve every target and build its client (nothing is connected); returns the secrets that
    must never be written (sensitive header values, API keys). ValueError naming the target."""
    secrets: set[str] = set()
    for target in profile.targets:
        try:
            options = client_options(profile, target)
            make_client(target.kind, target.url, options)
        except (ValueError, OSError) as exc:
            raise ValueError(f"target {target.name}: {exc}") from exc
        secrets |= secrets_of(options.headers)
    return secrets
