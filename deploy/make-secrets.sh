#!/bin/sh
# Creates what deploy/compose.yaml needs and the repository does not ship:
#   deploy/secrets/credentials.env        plain MQTT passwords, for you (mode 0600)
#   deploy/secrets/broker/passwords       the broker's password file (hashed, mosquitto_passwd)
#   deploy/secrets/broker/conf.d/         extra broker listeners (tls.conf with --tls)
#   deploy/secrets/broker/certs/          with --tls: ca.crt, server.crt, server.key
#   deploy/secrets/ca.key                 with --tls: the self-signed CA's key (not given to the broker)
#   deploy/hedgebot.env                   from hedgebot.env.example, the bot's MQTT password filled in
#
# Usage: deploy/make-secrets.sh [--tls] [--hostname NAME]... [--bot BOT_ID]...
#   --bot       bot ids to create users bot-<id> for (default: paper-1, the compose bot); the
#               first one's password goes into hedgebot.env. Each needs a block in mosquitto.acl.
#   --tls       also a TLS listener on 8883 with a self-signed CA and server certificate
#   --hostname  extra names in the server certificate (mosquitto, localhost, 127.0.0.1 always)
# Re-running keeps existing passwords and certificates and adds what is missing; delete a line of
# credentials.env (or a certificate) to have it made again. Needs mosquitto_passwd (Debian and
# Ubuntu: apt-get install mosquitto) and, for --tls, openssl.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
secrets="$here/secrets"
broker="$secrets/broker"
tls=no
bots=""
hostnames=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tls) tls=yes ;;
        --bot) shift; bots="$bots ${1:?--bot needs a bot id}" ;;
        --hostname) shift; hostnames="$hostnames ${1:?--hostname needs a name}" ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "make-secrets.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$bots" ] || bots="paper-1"

command -v mosquitto_passwd >/dev/null 2>&1 || {
    echo "make-secrets.sh: mosquitto_passwd not found: apt-get install mosquitto (or brew install mosquitto)" >&2
    exit 1
}

umask 077
mkdir -p "$secrets" "$broker/conf.d" "$broker/certs"
creds="$secrets/credentials.env"
touch "$creds"

password_of() {  # the user's password from credentials.env, made up and recorded if missing
    pw=$(sed -n "s/^$1=//p" "$creds" | head -n 1)
    if [ -z "$pw" ]; then
        pw=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
        printf '%s=%s\n' "$1" "$pw" >>"$creds"
    fi
    printf '%s' "$pw"
}

users="operator viewer"
for bot in $bots; do
    case "$bot" in
        *[!A-Za-z0-9_-]*|"") echo "make-secrets.sh: bad bot id '$bot' (letters, digits, _ and -)" >&2; exit 2 ;;
    esac
    grep -qx "user bot-$bot" "$here/mosquitto.acl" ||
        echo "make-secrets.sh: warning: mosquitto.acl has no 'user bot-$bot' block: copy the bot-paper-1 block" >&2
    users="$users bot-$bot"
done

# The password file is rebuilt from credentials.env each time, so it holds exactly these users.
tmp="$broker/passwords.new"
: >"$tmp"
for user in $users; do
    mosquitto_passwd -b "$tmp" "$user" "$(password_of "$user")"
done
mv "$tmp" "$broker/passwords"

# hedgebot.env: the first bot's user and password, the rest of the example kept.
first=$(echo $bots | cut -d' ' -f1)
env_file="$here/hedgebot.env"
[ -f "$env_file" ] || cp "$here/hedgebot.env.example" "$env_file"
pw=$(password_of "bot-$first")
sed -e "s|^HEDGEBOT_MQTT__USERNAME=.*|HEDGEBOT_MQTT__USERNAME=bot-$first|" \
    -e "s|^HEDGEBOT_MQTT__PASSWORD=.*|HEDGEBOT_MQTT__PASSWORD=$pw|" \
    -e "s|^HEDGEBOT_BOT_ID=.*|HEDGEBOT_BOT_ID=$first|" "$env_file" >"$env_file.new"
mv "$env_file.new" "$env_file"
chmod 0600 "$env_file" "$creds"

if [ "$tls" = yes ]; then
    command -v openssl >/dev/null 2>&1 || { echo "make-secrets.sh: --tls needs openssl" >&2; exit 1; }
    certs="$broker/certs"
    if [ ! -f "$certs/ca.crt" ] || [ ! -f "$secrets/ca.key" ]; then
        openssl req -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes \
            -keyout "$secrets/ca.key" -out "$certs/ca.crt" -subj "/CN=hedgebot MQTT CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        rm -f "$certs/server.crt"
    fi
    if [ ! -f "$certs/server.crt" ] || [ ! -f "$certs/server.key" ]; then
        san="DNS:mosquitto,DNS:localhost,IP:127.0.0.1"
        for name in $hostnames; do
            case "$name" in
                *[!0-9.]*) san="$san,DNS:$name" ;;
                *) san="$san,IP:$name" ;;
            esac
        done
        ext="$secrets/server.ext"
        printf '%s\n' "subjectAltName=$san" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
            "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$ext"
        openssl req -newkey rsa:3072 -nodes -keyout "$certs/server.key" \
            -out "$secrets/server.csr" -subj "/CN=mosquitto" 2>/dev/null
        openssl x509 -req -in "$secrets/server.csr" -CA "$certs/ca.crt" -CAkey "$secrets/ca.key" \
            -CAserial "$secrets/ca.srl" -CAcreateserial -days 825 -sha256 -extfile "$ext" -out "$certs/server.crt" 2>/dev/null
        rm -f "$secrets/server.csr" "$ext"
    fi
    cat >"$broker/conf.d/tls.conf" <<'CONF'
# Written by make-secrets.sh --tls: MQTT over TLS for bots and operators on other machines
# (bot side: HEDGEBOT_MQTT__PORT=8883 and HEDGEBOT_MQTT__CA_FILE=<a copy of certs/ca.crt>).
listener 8883
cafile /mosquitto/config/secrets/certs/ca.crt
certfile /mosquitto/config/secrets/certs/server.crt
keyfile /mosquitto/config/secrets/certs/server.key
tls_version tlsv1.2
CONF
fi

# The broker's container user (uid 1883) must read these: the image's entrypoint takes ownership
# of /mosquitto at start, which needs the mount writable (compose.yaml does that).
chmod 0755 "$broker" "$broker/conf.d" "$broker/certs"
find "$broker" -type f -exec chmod 0644 {} +
chmod 0600 "$broker/passwords"
[ ! -f "$broker/certs/server.key" ] || chmod 0600 "$broker/certs/server.key"

echo "MQTT users: $users (passwords in $creds)"
echo "bot environment: $env_file"
[ "$tls" = no ] || echo "TLS: listener 8883, CA certificate for clients: $broker/certs/ca.crt"
