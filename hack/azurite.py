"""Azurite, Microsoft's Azure Storage emulator (the npm package `azurite`), as the Azure Blob
service for `wasb://` and `abfs://` packages (HDInsight's Livy bodies): installed once with npm
into the cache (`~/.cache/lakejob/azurite-<version>`, reused until the version changes), started
on an address of this machine only, with the emulator's well-known account `devstoreaccount1`.

Called by tests/e2e/objectstore.py (the real tier's object stores). `python3 hack/azurite.py
install` prepares the cache (.ci/run gets npm from Debian).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "3.37.0"
CACHE = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob"))
HOME = CACHE / f"azurite-{VERSION}"
BINARY = HOME / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account: public knowledge, not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def install() -> Path:
    """azurite-blob from the npm registry into the cache (nothing when it is there); its path."""
    if BINARY.exists():
        return BINARY
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed: Azurite (the Azure Blob emulator) comes from the npm registry "
                           "(Debian: apt-get install npm)")
    partial = HOME.with_name(HOME.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    print(f"azurite: npm install azurite@{VERSION} into {HOME} (once)", file=sys.stderr, flush=True)
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(partial),
                        f"azurite@{VERSION}"], capture_output=True, text=True, timeout=900)
    if r.returncode:
        raise RuntimeError(f"npm install azurite@{VERSION} failed: {(r.stderr or r.stdout).strip()[-2000:]}")
    partial.rename(HOME)  # whole or not at all: a half-installed tree is never taken for done
    return BINARY


def start(host: str, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The Blob service on host:port, in memory; (its process, the Blob endpoint with `{account}`
    in it, as the chart's stores.blob.endpoint takes it)."""
    binary = install()
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(binary), "--blobHost", host, "--blobPort", str(port), "--inMemoryPersistence",
                                 "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited ({proc.returncode}); its log: {log}")
        try:
            urllib.request.urlopen(f"{url}/{ACCOUNT}?comp=list", timeout=2)
        except urllib.error.HTTPError:
            break  # it answers (an unsigned list is refused): ready
        except OSError:
            time.sleep(0.3)
            continue
        break
    else:
        proc.kill()
        raise RuntimeError(f"azurite did not answer on {url} within 60 s; its log: {log}")
    return proc, url + "/{account}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the emulator (in memory: nothing to save; on SIGTERM it waits for idle keep-alive
    connections to close)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: hack/azurite.py install")
    print(install())
