#!/usr/bin/env bash
# Installs the Debian packages the test suites need: Chromium for real VS Code,
# pcscd + vpcd + vicc + pcsc-tools + opensc for the reference smart card stack,
# make, g++, python3 and libkrb5-dev for code-server's native build, mingw-w64 + wine64 + clang
# to check the driver's Windows and macOS PC/SC structure layouts against real headers,
# meson, ninja-build, flex and pkg-config to build pcsc-lite's clients (scripts/pcsclite.mjs).
# python3-junitparser reads back the JUnit XML of `scard test` (test/helper/scard-test.test.ts).
# gnupg + scdaemon: gpg --card-status as a PC/SC client of `scard serve` (test/refstack/scardServe.test.ts).
# openjdk-17-jdk-headless: Java's javax.smartcardio as a real PC/SC client, compiled with javac at
# test time (test/refstack/javaSmartcardio.test.ts).
# Run as root (npm run setup:system).
set -euo pipefail
PKGS=(chromium pcscd libpcsclite1 libpcsclite-dev pcsc-tools libccid opensc
      vsmartcard-vpcd vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome
      python3-pyscard python3-junitparser hyperfine
      meson ninja-build flex pkg-config
      openjdk-17-jdk-headless gnupg scdaemon
      gcc g++ make python3 libc6-dev
      libkrb5-dev curl ca-certificates
      mingw-w64 wine64 clang)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "setup:system: all Debian packages present"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "setup:system: missing ${missing[*]}; run as root: npm run setup:system" >&2; exit 1; fi
echo "setup:system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
echo "setup:system: done"
