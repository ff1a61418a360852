. "$RUNTIME_HOME/lib.sh"
say "$APP_NAME running as $(id -un) in $(pwd), layers: base -> runtime -> app"
