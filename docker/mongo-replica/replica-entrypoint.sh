#!/bin/sh
# Entrypoint of the mongodb service: members of a replica set with authentication prove
# themselves to each other with a key file. Make one on the config volume the first time (kept
# across restarts; for more members copy it to each), then start as the image always does.
set -eu
key=/data/configdb/kovr-replica.key
if [ ! -s "$key" ]; then
  umask 077
  head -c 756 /dev/urandom | base64 -w 0 > "$key.new"
  mv "$key.new" "$key"
fi
chown mongodb:mongodb "$key"
chmod 400 "$key"
exec docker-entrypoint.sh "$@"
