# shellcheck shell=bash
# Backup locations: a local folder, or an rclone remote (`remote:path`) when the location
# contains a colon. Sourced after common.sh (it uses die):
#
#   # shellcheck source=../lib/storage.sh
#   . "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

# is_remote LOCATION: is it an rclone remote:path (any location with a colon)?
is_remote() { [[ $1 == *:* ]]; }

# need_rclone WHAT LOCATION: rclone must be installed to use the remote LOCATION, named WHAT
# (source, destination) in the message.
need_rclone() {
  command -v rclone >/dev/null || die "$1 '$2' is an rclone remote but rclone is not installed"
}

# need_folder WHAT FOLDER: the local FOLDER, named WHAT in the message, must exist.
need_folder() { [ -d "$2" ] || die "$1 '$2' does not exist"; }
