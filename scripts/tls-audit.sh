#!/usr/bin/env bash
# TLS audit: starts `ringgate demo` (the default configuration: TLS 1.2 and 1.3, ringgate's
# cipher policy) on loopback, scans it with sslscan (Debian's package) and fails on any protocol
# below TLS 1.2, any accepted cipher that is not AEAD, is weak (< 128 bits, RC4, DES, 3DES,
# NULL, EXPORT, anonymous, MD5) or lacks forward secrecy, TLS compression, insecure
# renegotiation, Heartbleed, or a key-exchange group under 128-bit strength.
#
#   scripts/tls-audit.sh            # builds ringgate (debug) when RINGGATE_BIN is not set
#
# Exit 0: passed; 1: a finding; 2: could not run (no scanner, no binary, no listener).
# sslscan is installed with apt-get when missing (TLS_AUDIT_INSTALL=0 prevents it).
set -euo pipefail
cd "$(dirname "$0")/.."

cannot() {
  echo "tls-audit: cannot run: $*" >&2
  exit 2
}

if ! command -v sslscan >/dev/null 2>&1; then
  if [ "${TLS_AUDIT_INSTALL:-1}" = 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sslscan) >/dev/null 2>&1 \
      || cannot "sslscan is not installed and apt-get could not install it"
  else
    cannot "sslscan is not installed (apt-get install sslscan)"
  fi
fi

bin=${RINGGATE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --bin ringgate || cannot "ringgate does not build"
  bin=target/debug/ringgate
fi
[ -x "$bin" ] || cannot "no ringgate binary at $bin"

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" demo --port 0 --dir "$work/demo" >"$work/out" 2>"$work/err" &
pid=$!
addr=
for _ in $(seq 1 100); do
  addr=$(grep -o 'listen=[^ ]*' "$work/out" 2>/dev/null | head -1 | sed 's/.*@//') || true
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/err" >&2; cannot "ringgate demo did not start"; }

sslscan --no-colour --show-sigs --xml="$work/scan.xml" "$addr" >"$work/scan.txt" 2>&1 \
  || { cat "$work/scan.txt" >&2; cannot "sslscan failed"; }
xml="$work/scan.xml"

findings=()
# Protocols: only TLS 1.2 and 1.3 may be enabled.
while read -r line; do
  type=$(sed -n 's/.*type="\([^"]*\)".*/\1/p' <<<"$line")
  version=$(sed -n 's/.*version="\([^"]*\)".*/\1/p' <<<"$line")
  enabled=$(sed -n 's/.*enabled="\([^"]*\)".*/\1/p' <<<"$line")
  proto="${type^^}v$version"
  if [ "$enabled" = 1 ]; then
    case "$proto" in
      TLSv1.2 | TLSv1.3) protocols+=("$proto") ;;
      *) findings+=("protocol $proto is enabled") ;;
    esac
  fi
done < <(grep -o '<protocol [^>]*>' "$xml")

# Ciphers: AEAD, forward secret, strong.
ciphers=()
while read -r line; do
  name=$(sed -n 's/.* cipher="\([^"]*\)".*/\1/p' <<<"$line")
  ver=$(sed -n 's/.*sslversion="\([^"]*\)".*/\1/p' <<<"$line")
  bits=$(sed -n 's/.* bits="\([0-9]*\)".*/\1/p' <<<"$line")
  strength=$(sed -n 's/.*strength="\([^"]*\)".*/\1/p' <<<"$line")
  ciphers+=("$ver $name ($bits bits)")
  case "$name" in
    *GCM* | *CHACHA20*POLY1305* | *CCM*) ;;
    *) findings+=("cipher $ver $name is not AEAD") ;;
  esac
  case "$name" in
    *RC4* | *DES* | *NULL* | *EXP* | *ADH* | *AECDH* | *anon* | *MD5*) findings+=("cipher $ver $name is weak") ;;
  esac
  if [ -n "$bits" ] && [ "$bits" -lt 128 ]; then findings+=("cipher $ver $name has $bits bits"); fi
  case "$strength" in "" | strong | acceptable) ;; *) findings+=("cipher $ver $name rated $strength") ;; esac
  if [ "$ver" != TLSv1.3 ]; then
    case "$name" in
      ECDHE-* | DHE-*) ;;
      *) findings+=("cipher $ver $name has no forward secrecy") ;;
    esac
  fi
done < <(grep -o '<cipher [^>]*>' "$xml")
[ ${#ciphers[@]} -gt 0 ] || findings+=("no cipher accepted: the scan did not reach the server")

# Compression: sslscan reports it where its OpenSSL can test it; openssl s_client says it for
# the TLS 1.2 handshake in any case ("Compression: NONE").
compression=unknown
grep -q '<compression supported="1"' "$xml" && compression=supported
grep -q '<compression supported="0"' "$xml" && compression=off
if command -v openssl >/dev/null 2>&1; then
  c=$(openssl s_client -connect "$addr" -tls1_2 </dev/null 2>/dev/null | sed -n 's/^Compression: *//p' | head -1)
  case "$c" in
    NONE) [ "$compression" = supported ] || compression=off ;;
    "") ;;
    *) compression="supported ($c)" ;;
  esac
fi
case "$compression" in
  supported*) findings+=("TLS compression is supported") ;;
  unknown) findings+=("TLS compression could not be tested (no sslscan result, no openssl)") ;;
esac
grep -q '<renegotiation supported="1" secure="0"' "$xml" && findings+=("insecure renegotiation is supported")
grep -q '<heartbleed [^>]*vulnerable="1"' "$xml" && findings+=("vulnerable to Heartbleed")

groups=()
while read -r line; do
  name=$(sed -n 's/.* name="\([^"]*\)".*/\1/p' <<<"$line")
  bits=$(sed -n 's/.* bits="\([0-9]*\)".*/\1/p' <<<"$line")
  groups+=("$name")
  if [ -n "$bits" ] && [ "$bits" -lt 128 ]; then findings+=("key exchange group $name has $bits bits of strength"); fi
done < <(grep -o '<group [^>]*>' "$xml")

echo "tls-audit: ringgate demo at $addr, scanned with sslscan $(sslscan --version 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -o '[0-9]\+\.[0-9.]\+' | head -1)"
echo "  protocols enabled: ${protocols[*]:-none}"
echo "  ciphers accepted (${#ciphers[@]}):"
printf '    %s\n' "${ciphers[@]}"
echo "  key exchange groups: ${groups[*]:-none listed}"
echo "  compression: $compression," \
  "renegotiation: $(grep -q '<renegotiation supported="1"' "$xml" && echo supported || echo off)," \
  "heartbleed: $(grep -q 'vulnerable="1"' "$xml" && echo VULNERABLE || echo no)"
if [ ${#findings[@]} -gt 0 ]; then
  echo "tls-audit: FAILED, ${#findings[@]} findings:"
  printf '  - %s\n' "${findings[@]}"
  exit 1
fi
echo "tls-audit: passed (no protocol below TLS 1.2, only AEAD forward-secret ciphers, no compression)"
