"""Make sure a Redis answers at REDIS_URL, starting a local `redis-server` when one is installed."""

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class RedisUnavailable(RuntimeError):
    pass


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis_server(*, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Start a non-persistent redis-server on 127.0.0.1:port; the caller owns the process."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "no Redis at REDIS_URL and no redis-server installed: `apt-get install redis-server` or set REDIS_URL"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*args, "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if redis_answers(url):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RedisUnavailable(f"redis-server did not start on port {port}; see {workdir / 'redis.log'}")


def ensure_redis(url: str, *, workdir: Path) -> subprocess.Popen[bytes] | None:
    """Return None when Redis already answers, else the redis-server process started for it."""
    if redis_answers(url):
        return None
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise RedisUnavailable(f"Redis at {parsed.hostname}:{parsed.port or 6379} does not answer; check REDIS_URL")
    return start_redis_server(port=parsed.port or 6379, workdir=workdir)
