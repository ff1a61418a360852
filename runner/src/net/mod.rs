//! Container networking (bridge, leases, NAT, published ports, slirp4netns).
