"""The zone split enforced on one machine: an S3 server that checks IAM, one IAM user per zone with
the zone's grants from `infra/policy/access.json`, and one env file per zone.

Why: a promise about which process may read what is only kept if something refuses the process
that breaks it. Here that is moto's S3 server with its IAM enforcement on (the same action and
resource checks as AWS, by key prefix; it does not evaluate `Condition` keys, which the zone rules
hold to the Terraform). The private zone's processes get `private.env` (the private user's keys,
their own SHOPRANK_HOME, the pseudonymisation key); the public side gets `public.env` (the public
user's keys and home, no key). `zone_runner` starts each private task with `private.env`.

What stays on the public side's local disk in this mode: the KFP pipeline root, the model base
path, the Feast registry and online store, and the Feast offline sources. The last one because
DuckDB (Feast's offline store) reads `s3://` only through its httpfs extension, which downloads at
run time and has no build for the locked DuckDB on PyPI.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from shoprank.zones import zone_policy

REGION = "us-east-1"
ZONES = ("private", "public")


@dataclass
class EnforcedZones:
    """A running enforcement: the S3 endpoint, the bucket, where the env files are."""

    endpoint: str
    bucket: str
    env_dir: Path
    credentials: dict[str, dict[str, str]] = field(repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)

    def env(self, zone: str) -> Path:
        return self.env_dir / f"{zone}.env"

    def client(self, zone: str):
        """An S3 client holding only `zone`'s credentials."""
        keys = self.credentials[zone]
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_up(endpoint: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server exited with status {process.returncode} before answering")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the S3 server at {endpoint} did not answer within {timeout_s:.0f} s")


def _set_enforcement(endpoint: str, on: bool) -> None:
    """moto's switch: after `0` unauthenticated actions every request is checked against IAM."""
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf", method="POST",
                                     headers={"Content-Type": "text/plain"})  # a form body would be parsed away
    urllib.request.urlopen(request, timeout=5).read()


def _env_lines(values: dict[str, str]) -> str:
    return "".join(f"{k}='{v}'\n" for k, v in values.items())


def start_zones(env_dir: Path, public_home: Path, private_home: Path, pseudonym_key: str,
                bucket: str = "shoprank-zones", log: Path | None = None) -> EnforcedZones:
    """Start an IAM-enforcing S3 server on a free loopback port, create the bucket and one user per
    zone with its policy, turn enforcement on and write `<env_dir>/{private,public}.env`."""
    env_dir, port = Path(env_dir), _free_port()
    env_dir.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://127.0.0.1:{port}"
    out = open(log or env_dir / "s3-server.log", "ab")  # noqa: SIM115 (the server's, closed with it)
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_up(endpoint, process)
        _set_enforcement(endpoint, False)
        setup = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "setup",
                 "aws_secret_access_key": "setup"}
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        iam = boto3.client("iam", **setup)
        credentials = {}
        for zone in ZONES:
            user = f"shoprank-{zone}"
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=f"{zone}-zone",
                                PolicyDocument=json.dumps(zone_policy(zone, bucket)))
            credentials[zone] = iam.create_access_key(UserName=user)["AccessKey"]
        _set_enforcement(endpoint, True)
    except BaseException:
        process.terminate()
        raise
    common = {"AWS_DEFAULT_REGION": REGION, "SHOPRANK_STORE_ROOT": f"s3://{bucket}",
              "SHOPRANK_S3_ENDPOINT_URL": endpoint, "SHOPRANK_ZONE_ENV_DIR": str(env_dir)}
    homes = {"private": Path(private_home), "public": Path(public_home)}
    for zone in ZONES:
        values = {**common, "SHOPRANK_HOME": str(homes[zone]),
                  "AWS_ACCESS_KEY_ID": credentials[zone]["AccessKeyId"],
                  "AWS_SECRET_ACCESS_KEY": credentials[zone]["SecretAccessKey"]}
        if zone == "private":
            values["SHOPRANK_PSEUDONYM_KEY"] = pseudonym_key
        else:
            values["SHOPRANK_FEAST_OFFLINE_ROOT"] = "offline"  # under the public home (see the docstring)
        path = env_dir / f"{zone}.env"
        path.write_text(_env_lines(values))
        path.chmod(0o600)
    return EnforcedZones(endpoint, bucket, env_dir, credentials, process)
