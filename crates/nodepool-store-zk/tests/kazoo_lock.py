"""Takes Nodepool's locks with kazoo, exactly as Nodepool and Zuul do, for interop tests.

Usage: kazoo_lock.py HOSTS PATH MODE [--tls CA CERT KEY]
  MODE hold: block until the lock is ours (30 s), print ACQUIRED, release after a line on
             stdin, print RELEASED.
  MODE try:  one non-blocking attempt; print ACQUIRED (and release) or BUSY.
  MODE contenders: print the lock's contender identifiers, one per line, then END.
"""
import sys

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock


def main():
    hosts, path, mode = sys.argv[1:4]
    kwargs = {}
    if len(sys.argv) > 4 and sys.argv[4] == "--tls":
        ca, cert, key = sys.argv[5:8]
        kwargs = dict(use_ssl=True, ca=ca, certfile=cert, keyfile=key)
    client = KazooClient(hosts=hosts, timeout=10.0, **kwargs)
    client.start(timeout=30)
    try:
        lock = Lock(client, path)
        if mode == "hold":
            lock.acquire(blocking=True, timeout=30)
            print("ACQUIRED", flush=True)
            sys.stdin.readline()
            lock.release()
            print("RELEASED", flush=True)
        elif mode == "try":
            if lock.acquire(blocking=False):
                print("ACQUIRED", flush=True)
                lock.release()
            else:
                print("BUSY", flush=True)
        elif mode == "contenders":
            for contender in lock.contenders():
                print(contender, flush=True)
            print("END", flush=True)
        else:
            raise SystemExit("unknown mode %s" % mode)
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
