"""AWS shared credentials and config files for the S3 store (``AWS_PROFILE``, ``s3_profile``).

obstore reads ``AWS_*`` environment variables and instance/web-identity credentials but not the
shared files, so a named profile is read here, following the AWS CLI's documented layout
(docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html):
``~/.aws/credentials`` (``AWS_SHARED_CREDENTIALS_FILE``) has ``[NAME]`` sections with
``aws_access_key_id``, ``aws_secret_access_key`` and optionally ``aws_session_token``;
``~/.aws/config`` (``AWS_CONFIG_FILE``) has ``[profile NAME]`` sections (``[default]`` for the
default profile) that may hold the same keys and ``region``. Credentials in the credentials file win.

Precedence, as in the AWS tools: a profile named by ``s3_profile``; else ``AWS_ACCESS_KEY_ID`` in the
environment; else ``AWS_PROFILE``; else the ``default`` profile if the files have one; else obstore's
own chain. Only static keys are read (SSO, ``role_arn`` and ``credential_process`` profiles are not);
the files are reread every few minutes so rotated keys are picked up without a restart.
"""

from __future__ import annotations

import configparser
import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REREAD_AFTER = datetime.timedelta(minutes=5)


class ProfileError(ValueError):
    """The named profile is missing or has no static keys."""


def _paths(environ: Mapping[str, str]) -> tuple[Path, Path]:
    home = Path(environ.get("HOME") or Path.home())
    creds = environ.get("AWS_SHARED_CREDENTIALS_FILE") or str(home / ".aws" / "credentials")
    config = environ.get("AWS_CONFIG_FILE") or str(home / ".aws" / "config")
    return Path(creds).expanduser(), Path(config).expanduser()


def _section(path: Path, name: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, configparser.Error) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    return dict(parser[name]) if parser.has_section(name) else None


def read_profile(name: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The profile's settings (config file, overlaid by the credentials file), or None."""
    creds_path, config_path = _paths(environ)
    config = _section(config_path, "default" if name == "default" else f"profile {name}")
    creds = _section(creds_path, name)
    if config is None and creds is None:
        return None
    return {**(config or {}), **(creds or {})}


@dataclass
class ProfileCredentials:
    """An obstore ``credential_provider``: the profile's static keys, reread every few minutes."""

    profile: str
    environ: Mapping[str, str]

    def __call__(self) -> dict[str, Any]:
        got = read_profile(self.profile, self.environ) or {}
        key, secret = got.get("aws_access_key_id"), got.get("aws_secret_access_key")
        if not key or not secret:
            raise ProfileError(f"AWS profile {self.profile!r} has no aws_access_key_id and "
                               "aws_secret_access_key")
        return {"access_key_id": key, "secret_access_key": secret,
                "token": got.get("aws_session_token") or None,
                "expires_at": datetime.datetime.now(datetime.UTC) + REREAD_AFTER}


def profile_credentials(profile: str = "", environ: Mapping[str, str] | None = None
                        ) -> tuple[ProfileCredentials | None, str]:
    """(credential provider or None for obstore's own chain, the profile's region or "")."""
    env = os.environ if environ is None else environ
    name = profile
    if not name:
        if env.get("AWS_ACCESS_KEY_ID"):
            return None, ""
        name = env.get("AWS_PROFILE", "")
    explicit = bool(name)
    name = name or "default"
    got = read_profile(name, env)
    if got is None:
        if explicit:
            creds, config = _paths(env)
            raise ProfileError(f"AWS profile {name!r} is in neither {creds} nor {config}")
        return None, ""
    provider = ProfileCredentials(name, dict(env))
    if explicit or got.get("aws_access_key_id"):
        provider()  # fail now, at start-up, not on the first request
        return provider, got.get("region", "")
    return None, got.get("region", "")
