# Sourced by the bench scripts: what each needs before it measures anything.
# Expects ROOT (the checkout) to be set.

# The vault binary to time: $VAULT_BIN if given (a dev build, say), else a
# release build made now.
vault_binary() {
    if [ -z "${VAULT_BIN:-}" ]; then
        (cd "$ROOT" && cargo build --release --quiet)
        VAULT_BIN=$ROOT/target/release/vault
    fi
    VAULT_BIN=$(readlink -f "$VAULT_BIN")
}

# restic and borg from Debian's packages, rustic from crates.io (a long
# build), for those of them named in $TOOLS that are missing.
install_peers() {
    local tool
    for tool in restic borg; do
        if [[ " $TOOLS " == *" $tool "* ]] && ! command -v "$tool" >/dev/null; then
            echo "installing $tool from Debian's packages" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup >/dev/null
        fi
    done
    if [[ " $TOOLS " == *" rustic "* ]] && ! command -v rustic >/dev/null; then
        echo "installing rustic from crates.io (cargo install --locked rustic-rs)" >&2
        cargo install --locked rustic-rs >/dev/null
    fi
}
