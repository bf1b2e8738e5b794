# Sourced by the scripts that install Debian packages when missing (haproxy.sh, s3.sh).
#   as_root CMD...              run CMD as root (sudo unless already root)
#   apt_install_quietly PKG...  install PKGs without starting their packaged services (a
#                               temporary policy-rc.d answering 101); apt's output goes to stderr
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install_quietly() {
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >&2
    [ $made_policy = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
}
