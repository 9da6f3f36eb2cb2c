#!/usr/bin/env bash
# Makes the certificates of both nginx guides ringgate follows with the guides' own openssl
# commands, verbatim:
#   OUTDIR/tls-termination/  the nginx TLS-termination guide's "Generating SSL Certificates":
#                            private.key, csr.pem, public.pem (X.509 v1, self-signed, made by
#                            `openssl x509 -req -signkey`)
#   OUTDIR/enterprise-mtls/  the enterprise mTLS guide's sections 2-3: ca/, server/, client/
#                            (and client/client.p12; the client certificate is X.509 v1, made
#                            by `openssl x509 -req -CA`), plus otherca/ and otherca-client/: a
#                            second CA and a client under it, for the negative case (not in
#                            the guide).
# Usage: tests/certs/make-guide-certs.sh OUTDIR
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
mkdir -p "$out/tls-termination" "$out/enterprise-mtls"

# --- the nginx TLS-termination guide --------------------------------------------------------
(
  cd "$out/tls-termination"
  openssl genpkey -algorithm RSA -out private.key
  # The guide's command is interactive; its prompts are answered on stdin: Country, State,
  # Locality, Organization, Organizational Unit, Common Name, Email, challenge password,
  # optional company name.
  printf 'CN\nBeijing\nBeijing\nExample Company\nApp\nlocalhost\n\n\n\n' |
  openssl req -new -key private.key -out csr.pem
  openssl x509 -req -days 365 -in csr.pem -signkey private.key -out public.pem
) >/dev/null 2>&1 || { echo "the TLS-termination guide's commands failed" >&2; exit 1; }

# --- the enterprise mTLS guide, sections 2-3 ------------------------------------------------
cd "$out/enterprise-mtls"
mkdir -p ca server client

# 3.1 Create the Root CA
openssl genrsa -out ca/ca.key 4096
openssl req -new -x509 -days 3650 \
  -key ca/ca.key \
  -out ca/ca.crt \
  -subj "/C=CN/ST=Beijing/L=Beijing/O=MyCompany/OU=CA/CN=MyRootCA"

# 3.2 Server Certificate
openssl genrsa -out server/server.key 2048
openssl req -new -key server/server.key \
  -out server/server.csr \
  -subj "/C=CN/O=MyCompany/OU=Web/CN=server.example.com"
openssl x509 -req -days 365 \
  -in server/server.csr \
  -CA ca/ca.crt \
  -CAkey ca/ca.key \
  -CAcreateserial \
  -out server/server.crt \
  -extfile <(printf "subjectAltName=DNS:server.example.com,IP:127.0.0.1")

# 3.3 Client Certificate
openssl genrsa -out client/client.key 2048
openssl req -new -key client/client.key \
  -out client/client.csr \
  -subj "/C=CN/O=MyCompany/OU=Client/CN=client1"
openssl x509 -req -days 365 \
  -in client/client.csr \
  -CA ca/ca.crt -CAkey ca/ca.key \
  -CAcreateserial -out client/client.crt

# Export the client certificate for browsers
openssl pkcs12 -export \
  -inkey client/client.key \
  -in client/client.crt \
  -out client/client.p12 \
  -password pass:ChangeMe123

# --- not in the guide: another CA and a client under it, made the same way ---------------
mkdir -p otherca otherca-client
openssl genrsa -out otherca/ca.key 2048
openssl req -new -x509 -days 3650 \
  -key otherca/ca.key \
  -out otherca/ca.crt \
  -subj "/C=CN/O=OtherCompany/OU=CA/CN=OtherRootCA"
openssl genrsa -out otherca-client/client.key 2048
openssl req -new -key otherca-client/client.key \
  -out otherca-client/client.csr \
  -subj "/C=CN/O=MyCompany/OU=Client/CN=client1"
openssl x509 -req -days 365 \
  -in otherca-client/client.csr \
  -CA otherca/ca.crt -CAkey otherca/ca.key \
  -CAcreateserial -out otherca-client/client.crt
