# worker_libraries WORKERD: prints, one per line, every shared library that
# buildyard-workerd needs in a root of its own (the test container image,
# the test guest's initramfs): those ldd names, the loader, and libssl and
# libcrypto, which the worker dlopen()s at its first TLS connection or
# handshake (services/common/tls_api.cpp, crypto.cpp) and ldd therefore
# cannot see, with what they need in turn.
worker_libraries() {
    local lib path dlopened=()
    for lib in libssl.so.3 libcrypto.so.3; do
        path=$(/sbin/ldconfig -p | awk -v lib="$lib" '$1 == lib && /x86-64|64bit/ { print $NF; exit }')
        [ -n "$path" ] || path=$(/sbin/ldconfig -p | awk -v lib="$lib" '$1 == lib { print $NF; exit }')
        [ -n "$path" ] || { echo "worker_libraries: $lib not found by ldconfig" >&2; return 1; }
        dlopened+=("$path")
    done
    {
        printf '%s\n' "${dlopened[@]}"
        ldd "$1" "${dlopened[@]}" | awk '/=> \// { print $3 } /^\t\// { print $1 }'
    } | sort -u
}
