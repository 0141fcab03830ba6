# The master's objects from a test under systemd in a container (source
# after tests/lib/nspawn.sh, whose ct this uses): calls and properties by
# busctl, values without their type and quotes.
master_call() { ct busctl --system call org.buildyard.Master1 /org/buildyard/Master1 org.buildyard.Master1 "$@"; }
# prop PATH INTERFACE NAME: the value alone, without type and quotes.
prop() { ct busctl --system get-property org.buildyard.Master1 "$1" "$2" "$3" | cut -d' ' -f2- | tr -d '"'; }
worker_path() { master_call GetWorker s "$1" | cut -d' ' -f2 | tr -d '"'; }
build_path() { master_call GetBuild t "$1" | cut -d' ' -f2 | tr -d '"'; }
worker_state_is() { [ "$(prop "$(worker_path "$1")" org.buildyard.Worker1 State)" = "$2" ]; }
build_prop() { prop "$(build_path "$1")" org.buildyard.Build1 "$2"; }
build_state_is() { [ "$(build_prop "$1" State)" = "$2" ]; }
