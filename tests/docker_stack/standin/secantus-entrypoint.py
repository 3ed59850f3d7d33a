"""First start of the SecantusDB stand-in, as the mongo image's entrypoint does it: on an empty
volume, create the root user (MONGO_INITDB_ROOT_*) and the app user (MONGO_APP_*, the roles
docker/mongo-init/create-app-user.js gives) on a loopback-only server, then serve with --auth."""

import os
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

STORAGE = Path("/data/db")
MARKER = STORAGE / ".kovr-users-created"
SERVER = ["/opt/secantus/bin/secantusd-py", "--storage-path", str(STORAGE), "--log-level", "WARNING",
          "--cache-size", "256M"]


def create_users() -> None:
    setup = subprocess.Popen([*SERVER, "--host", "127.0.0.1", "--port", "27018"])
    client: MongoClient = MongoClient("mongodb://127.0.0.1:27018/?directConnection=true",
                                      serverSelectionTimeoutMS=1000)
    try:
        for _ in range(60):
            try:
                client.admin.command("ping")
                break
            except PyMongoError:
                time.sleep(0.5)
        env = os.environ
        client.admin.command("createUser", env["MONGO_INITDB_ROOT_USERNAME"],
                             pwd=env["MONGO_INITDB_ROOT_PASSWORD"], roles=[{"role": "root", "db": "admin"}])
        app_db = env["MONGO_APP_DB"]
        client[app_db].command("createUser", env["MONGO_APP_USERNAME"], pwd=env["MONGO_APP_PASSWORD"],
                               roles=[{"role": "readWrite", "db": app_db}, {"role": "dbAdmin", "db": app_db}])
        print(f"secantus stand-in: created users for database {app_db}", flush=True)
    finally:
        client.close()
        setup.terminate()
        setup.wait(timeout=60)
    MARKER.write_text("users created\n", encoding="utf-8")


if __name__ == "__main__":
    STORAGE.mkdir(parents=True, exist_ok=True)
    if not MARKER.exists():
        create_users()
    sys.stdout.flush()
    os.execv(SERVER[0], [*SERVER, "--auth", "--host", "0.0.0.0", "--port", "27017"])
