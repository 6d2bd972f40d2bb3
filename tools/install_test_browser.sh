#!/usr/bin/env bash
# Debian's Chromium for the web page's browser test (tests/app): Playwright drives this executable
# and never downloads a browser. Needs root (or passwordless sudo); without it the test skips and
# says why. Prints one line either way.
set -u
if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(command -v chromium)"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then run=""; elif sudo -n true 2>/dev/null; then run="sudo -n"; else
    echo "chromium: not installed (no root for apt-get): the browser test will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! $run apt-get install -y -q chromium >/dev/null 2>&1; then
    $run apt-get update -q >/dev/null 2>&1
    $run apt-get install -y -q chromium >/dev/null 2>&1 || { echo "chromium: apt-get install failed: the browser test will skip"; exit 0; }
fi
echo "chromium: installed $(command -v chromium)"
