#!/bin/sh
# Run the given command as the owner of the data folder, never as root.
#
# Only the Compose `app` service starts as root (`user: root`), because it writes into the bind
# mount ./data and must write there as the host user who owns it, whatever that user's id. Every
# other service starts as the image's plain user and this script just runs their command.
#
# Started as root, it picks the user to become:
#   APP_UID / APP_GID when set (APP_GID defaults to APP_UID);
#   else the owner of DATA_DIR (default /app/data) when that is not root: on Linux the user who
#   cloned the repository, since the clone creates ./data (data/.gitkeep);
#   else the image's `app` user (uid 1000): the folder belongs to root because the engine created
#   it (the host folder was missing), so it is handed over to that user first.
# Then it drops every privilege (util-linux setpriv) and runs the command, with HOME set to that
# user's home or /tmp. It refuses, with one line, to go on when that user cannot write DATA_DIR.
set -eu

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

fail() {
    echo "crypto-etl: $*" >&2
    exit 1
}

data="${DATA_DIR:-/app/data}"
mkdir -p "$data"
owner_uid="$(stat -c %u "$data")"
owner_gid="$(stat -c %g "$data")"
default_uid="$(id -u app 2>/dev/null || echo 1000)"
default_gid="$(id -g app 2>/dev/null || echo 1000)"

if [ -n "${APP_UID:-}" ]; then
    uid="$APP_UID"
    gid="${APP_GID:-$APP_UID}"
elif [ "$owner_uid" != 0 ]; then
    uid="$owner_uid"
    gid="${APP_GID:-$owner_gid}"
else
    uid="$default_uid"
    gid="${APP_GID:-$default_gid}"
fi
case "$uid:$gid" in
    *[!0-9:]* | :* | *:) fail "APP_UID and APP_GID must be numeric ids, got '$uid:$gid'" ;;
esac

if [ "$owner_uid" = 0 ] && [ "$uid" != 0 ]; then
    chown "$uid:$gid" "$data"
fi

as_user() {
    setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs "$@"
}
if ! as_user test -w "$data"; then
    fail "user $uid:$gid cannot write $data (owned by $owner_uid:$owner_gid); set APP_UID and" \
        "APP_GID in .env to the owner of ./data (id -u, id -g), or make it writable for them"
fi

HOME="$(getent passwd "$uid" | cut -d: -f6 || true)"
if [ -z "$HOME" ] || ! as_user test -w "$HOME"; then
    HOME=/tmp
fi
export HOME
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs "$@"
