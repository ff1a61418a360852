say() { echo "[$LAYER] $*"; }
