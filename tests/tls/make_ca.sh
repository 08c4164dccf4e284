#!/usr/bin/env bash
# make_ca.sh DIR — a throw-away test CA and one server certificate for the
# HTTPS mock, made with the openssl CLI. Idempotent: an existing, still
# valid set in DIR is kept.
#
#   DIR/ca.pem       the CA certificate (clients trust it: --cafile,
#                    SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, ...)
#   DIR/ca.key       its key (only make_ca.sh uses it)
#   DIR/server.pem   the server certificate, signed by the CA, with every
#                    name in LM_TLS_HOSTS (below) and 127.0.0.1/::1 as
#                    subjectAltNames, so each client verifies the mock
#                    under the LLM host name it connects to (the name is
#                    also what goes out as SNI)
#   DIR/server.key   its key
#   DIR/hosts        an /etc/hosts for the clients: every name -> 127.0.0.1
#
# The names the suite maps to the mock; tests/integration/lib_tls.sh uses
# the same list (printed by `make_ca.sh --hosts`).
set -eu
LM_TLS_HOSTS="localhost api.openai.com api.anthropic.com
  generativelanguage.googleapis.com api.groq.com openrouter.ai
  api.mistral.ai api.deepseek.com api.cohere.com api.perplexity.ai
  api.together.xyz api.fireworks.ai api.x.ai myresource.openai.azure.com
  example.com"
if [ "${1:-}" = --hosts ]; then
  echo $LM_TLS_HOSTS
  exit 0
fi
dir=${1:?usage: make_ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
if [ -s server.pem ] && [ -s hosts ] &&
  openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1 &&
  openssl x509 -in server.pem -noout -checkend 86400 >/dev/null 2>&1; then
  exit 0
fi
san="IP:127.0.0.1,IP:::1"
for h in $LM_TLS_HOSTS; do san="$san,DNS:$h"; done
q() { "$@" 2>/dev/null >/dev/null; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.pem -days 30 -subj "/CN=llmmeter test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout server.key -out server.csr -subj "/CN=llmmeter mock provider"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
  "$san" >server.ext
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 30 -extfile server.ext
rm -f server.csr server.ext ca.srl
{
  echo "127.0.0.1 localhost"
  echo "::1 localhost ip6-localhost"
  for h in $LM_TLS_HOSTS; do [ "$h" = localhost ] || echo "127.0.0.1 $h"; done
} >hosts
openssl verify -CAfile ca.pem server.pem >/dev/null
