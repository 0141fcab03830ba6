# worker_libraries WORKERD: prints, one per line, every shared library that
# buildyard-workerd needs in a root of its own (the test container image,
# the test guest's initramfs): those ldd names, the loader, and libcrypto,
# which the worker dlopen()s at its first handshake (services/common/crypto.cpp)
# and ldd therefore cannot see, with what libcrypto needs in turn.
worker_libraries() {
    local crypto
    crypto=$(/sbin/ldconfig -p | awk '$1 == "libcrypto.so.3" && /x86-64|64bit/ { print $NF; exit }')
    [ -n "$crypto" ] || crypto=$(/sbin/ldconfig -p | awk '$1 == "libcrypto.so.3" { print $NF; exit }')
    [ -n "$crypto" ] || { echo "worker_libraries: libcrypto.so.3 not found by ldconfig" >&2; return 1; }
    {
        echo "$crypto"
        ldd "$1" "$crypto" | awk '/=> \// { print $3 } /^\t\// { print $1 }'
    } | sort -u
}
