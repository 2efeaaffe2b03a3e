//! Sets of IP networks (the protected networks).

use std::net::IpAddr;

use ipnet::IpNet;

/// A small set of IPv4 and IPv6 networks with a membership test.
///
/// Lookups scan the list; protected-network lists are short (tens of
/// prefixes), where a linear scan over two vectors of integers beats a
/// trie. Networks are kept per family so an IPv4 lookup never touches IPv6
/// prefixes.
#[derive(Clone, Debug, Default)]
pub struct NetSet {
    v4: Vec<(u32, u32)>,   // (network, mask)
    v6: Vec<(u128, u128)>, // (network, mask)
    nets: Vec<IpNet>,
}

impl NetSet {
    /// Builds a set from networks (host bits are ignored).
    pub fn new(nets: &[IpNet]) -> Self {
        let mut set = NetSet::default();
        for net in nets {
            set.nets.push(net.trunc());
            match net {
                IpNet::V4(n) => {
                    let mask = u32::from(n.netmask());
                    set.v4.push((u32::from(n.network()) & mask, mask));
                }
                IpNet::V6(n) => {
                    let mask = u128::from(n.netmask());
                    set.v6.push((u128::from(n.network()) & mask, mask));
                }
            }
        }
        set
    }

    /// RFC 1918 private IPv4 space and fc00::/7 unique-local IPv6 space: the
    /// protected networks when no configuration names any.
    pub fn private_defaults() -> Self {
        let nets: Vec<IpNet> = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        NetSet::new(&nets)
    }

    /// Whether `ip` falls in one of the networks.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }

    /// The networks, as given (host bits cleared).
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_defaults_cover_rfc1918_and_ula_only() {
        let s = NetSet::private_defaults();
        for inside in ["10.1.2.3", "172.31.255.255", "192.168.0.1", "fd00::1"] {
            assert!(s.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["172.32.0.1", "8.8.8.8", "2001:db8::1", "fe80::1"] {
            assert!(!s.contains(outside.parse().unwrap()), "{outside}");
        }
    }

    #[test]
    fn host_bits_in_a_network_are_ignored() {
        let s = NetSet::new(&["10.0.0.7/24".parse().unwrap()]);
        assert!(s.contains("10.0.0.200".parse().unwrap()));
        assert!(!s.contains("10.0.1.1".parse().unwrap()));
    }
}
